# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA's pixel predictor for the mask-token outputs."""

from typing import Optional

from mmpretrain.registry import MODELS

from .dino_head import PerADINOHead


@MODELS.register_module()
class PixelPredictionHead(PerADINOHead):
    """PerA's predictor: maps each mask-token output to the pixels of its patch.

    Same structure as the DINO head (MLP -> L2 norm -> weight-normalised linear),
    with ``patch_size**2 * img_channels`` outputs in channel-last patch order
    (``pera_mm.structures.patchify``). The normalised bottleneck bounds each
    output by its row norm ``g``.

    Args:
        in_channels (int): input width; PerA fills in its backbone's width.
        patch_size (int): patch side; PerA fills in its backbone's.
        img_channels (int): image bands; PerA fills in its backbone's.
        hidden_channels (int): hidden MLP width. Defaults to 2048.
        bottleneck_channels (int): bottleneck width. Defaults to 384.
        num_layers (int): MLP layers. Defaults to 3.
        linear_kernel (str): as in :class:`PerADINOHead`. Defaults to 'auto'.
        init_cfg (dict, optional): MMEngine initialisation config.
    """

    def __init__(
        self,
        in_channels: int,
        patch_size: int = 16,
        img_channels: int = 3,
        hidden_channels: int = 2048,
        bottleneck_channels: int = 384,
        num_layers: int = 3,
        linear_kernel: str = 'auto',
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(
            in_channels,
            patch_size**2 * img_channels,
            hidden_channels,
            bottleneck_channels,
            num_layers,
            linear_kernel,
            init_cfg,
        )
