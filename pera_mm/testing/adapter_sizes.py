# Copyright (c) pera-mm contributors. All rights reserved.
"""The ViT-Adapter settings the downstream configs must use per size (method.md §1.7)."""

#: size in the config name -> (embed dims, deformable-attention heads,
#: interaction indexes, activation checkpointing)
VIT_ADAPTER_SIZES = {
    'base': (768, 12, [[0, 2], [3, 5], [6, 8], [9, 11]], False),
    'large': (1024, 16, [[0, 5], [6, 11], [12, 17], [18, 23]], True),
    'giant1024': (1024, 16, [[0, 9], [10, 19], [20, 29], [30, 39]], True),
}
