# Copyright (c) pera-mm contributors. All rights reserved.
"""Data conventions shared by the data pipeline and the models (no registries)."""

from .mask_flags import MASK_L, MASK_S, MASK_T, flag_indices
from .patch_ops import gather_tokens, patchify, unpatchify

__all__ = ['MASK_S', 'MASK_L', 'MASK_T', 'flag_indices', 'gather_tokens', 'patchify', 'unpatchify']
