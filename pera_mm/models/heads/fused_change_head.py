# Copyright (c) pera-mm contributors. All rights reserved.
"""A simple change head: fuse the two dates' features, then an FCN."""

from typing import Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class FusedChangeHead(BaseDecodeHead):
    """Fuse the features of date A and date B, then conv-norm-ReLU layers and a classifier.

    ``fusion`` combines the two (B, C, h, w) maps picked by ``in_index``:

    - ``'concat'``: ``[f_a, f_b]`` (2C channels; the order of the dates matters);
    - ``'diff'``: ``f_b - f_a`` (C channels, signed);
    - ``'abs_diff'``: ``|f_a - f_b|`` (C channels, symmetric in the dates).

    Then ``num_convs`` ConvModules (``kernel_size``, ``channels`` wide, ``norm_cfg``,
    ReLU) and the 1x1 ``conv_seg``. The logits stay at the features' resolution; MMSeg's
    ``loss_by_feat`` and ``predict_by_feat`` resize them bilinearly to the label / input
    size. Use it after :class:`ChangeFeatureProjection` (1/4 resolution) or directly on
    one backbone level.

    Args:
        fusion (str): 'concat', 'diff' or 'abs_diff'.
        num_convs (int): conv layers after the fusion (>= 1).
        kernel_size (int): their kernel size.
        **kwargs: as :class:`BaseDecodeHead` (``in_channels`` is the width of ONE date's
            map; ``channels``, ``num_classes``, ``in_index``, ``norm_cfg``, ``loss_decode``,
            ``dropout_ratio``, ``align_corners``).
    """

    FUSIONS = ('concat', 'diff', 'abs_diff')

    def __init__(
        self, fusion: str = 'abs_diff', num_convs: int = 2, kernel_size: int = 3, **kwargs
    ):
        if fusion not in self.FUSIONS:
            raise PeraConfigError(
                f'FusedChangeHead: fusion must be one of {self.FUSIONS}, got {fusion!r}'
            )
        if not isinstance(num_convs, int) or num_convs < 1:
            raise PeraConfigError(
                f'FusedChangeHead: num_convs must be an int >= 1, got {num_convs!r}'
            )
        super().__init__(**kwargs)
        if not isinstance(self.in_channels, int):
            raise PeraConfigError(
                'FusedChangeHead: in_channels must be one int (one level), '
                f'got {self.in_channels!r}'
            )
        self.fusion = fusion
        fused = 2 * self.in_channels if fusion == 'concat' else self.in_channels
        layers = []
        for i in range(num_convs):
            layers.append(
                ConvModule(
                    fused if i == 0 else self.channels,
                    self.channels,
                    kernel_size,
                    padding=kernel_size // 2,
                    conv_cfg=self.conv_cfg,
                    norm_cfg=self.norm_cfg,
                    act_cfg=self.act_cfg,
                )
            )
        self.convs = nn.Sequential(*layers)

    def _select(self, feats: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        return feats if isinstance(feats, torch.Tensor) else feats[self.in_index]

    def fuse(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
        """The fused map of one pair of (B, C, h, w) features."""
        if feat_a.shape != feat_b.shape:
            raise PeraConfigError(
                f'FusedChangeHead: the dates have features of different shapes '
                f'{tuple(feat_a.shape)} and {tuple(feat_b.shape)}'
            )
        if self.fusion == 'concat':
            return torch.cat([feat_a, feat_b], dim=1)
        if self.fusion == 'diff':
            return feat_b - feat_a
        return (feat_a - feat_b).abs()

    def forward(self, inputs) -> torch.Tensor:
        """Logits for ``inputs = (features of date A, features of date B)``."""
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise PeraConfigError(
                'FusedChangeHead: inputs must be a pair (features of date A, features of date B)'
            )
        fused = self.fuse(self._select(inputs[0]), self._select(inputs[1]))
        return self.cls_seg(self.convs(fused))
