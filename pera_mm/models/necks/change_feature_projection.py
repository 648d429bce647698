# Copyright (c) pera-mm contributors. All rights reserved.
"""Projection of encoder features to one 1/4-resolution map (BIT's ``conv_pred`` position)."""

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class ChangeFeatureProjection(BaseModule):
    """Pick encoder levels, bring them to 1/4 resolution, project to the head's width.

    This is where the reference BIT has its ``conv_pred`` (ResNet-18 output at 1/8,
    x2 nearest upsample, conv3x3 256 -> 32 with bias): it turns a backbone's output into
    the (B, ``out_channels``, H/4, W/4) map a :class:`BITHead` takes, for one date (the
    :class:`SiameseEncoderDecoder` runs it on each date with shared weights). Each
    selected level ``in_index[i]`` is resized by ``scale_factors[i]`` (``mode``
    interpolation, ``align_corners=False``); the levels are concatenated along the
    channels and one conv (``kernel_size``, with bias) projects them.

    - Plain ``PerAViT`` (stride 16, one map of the last block): ``in_index=[0]``,
      ``scale_factors=[4]``, bilinear, conv3x3 768 -> 32 (our default in the configs). A
      multi-level variant takes several block outputs, each x4.
    - ``PerAViTAdapter`` (strides 4/8/16/32): ``in_index=[0]``, ``scale_factors=[1]``
      (its stride-4 map as it is).

    Args:
        in_channels (int | Sequence[int]): channels of each selected level.
        out_channels (int): the head's width (32 for BIT).
        in_index (int | Sequence[int]): which backbone outputs to use.
        scale_factors (float | Sequence[float]): resize factor of each selected level to
            reach stride 4 (16 -> 4: 4; 4 -> 4: 1).
        mode (str): interpolation of the resize ('bilinear' or 'nearest').
        kernel_size (int): kernel of the projection conv (3 as BIT's ``conv_pred``).
        init_cfg (dict, optional): initialisation config.

    Returns (forward): a list with the one projected map, so a head's ``in_index=0``
    selects it.
    """

    def __init__(
        self,
        in_channels: Union[int, Sequence[int]],
        out_channels: int = 32,
        in_index: Union[int, Sequence[int]] = 0,
        scale_factors: Union[float, Sequence[float]] = 4,
        mode: str = 'bilinear',
        kernel_size: int = 3,
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.in_index = [in_index] if isinstance(in_index, int) else list(in_index)
        in_channels = [in_channels] if isinstance(in_channels, int) else list(in_channels)
        if isinstance(scale_factors, (int, float)):
            scale_factors = [scale_factors] * len(self.in_index)
        self.scale_factors = [float(s) for s in scale_factors]
        if not (len(in_channels) == len(self.in_index) == len(self.scale_factors)):
            raise PeraConfigError(
                'ChangeFeatureProjection: in_channels, in_index and scale_factors need one '
                f'entry per level, got {len(in_channels)}, {len(self.in_index)}, '
                f'{len(self.scale_factors)}'
            )
        if mode not in ('bilinear', 'nearest', 'bicubic'):
            raise PeraConfigError(
                f"ChangeFeatureProjection: mode must be 'bilinear', 'nearest' or 'bicubic', "
                f'got {mode!r}'
            )
        if any(s <= 0 for s in self.scale_factors):
            raise PeraConfigError(
                f'ChangeFeatureProjection: scale_factors must be > 0, got {self.scale_factors}'
            )
        self.in_channels, self.out_channels, self.mode = in_channels, out_channels, mode
        self.proj = nn.Conv2d(
            sum(in_channels), out_channels, kernel_size, padding=kernel_size // 2, bias=True
        )

    def _resize(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        if factor == 1:
            return x
        kwargs = {} if self.mode == 'nearest' else dict(align_corners=False)
        return F.interpolate(x, scale_factor=factor, mode=self.mode, **kwargs)

    def forward(
        self, inputs: Sequence[torch.Tensor], inputs_b: Optional[Sequence[torch.Tensor]] = None
    ):
        """Project one date's backbone outputs to ``[(B, out_channels, H/4, W/4)]``.

        Called with both dates' outputs (``neck(feats_a, feats_b)``, as Open-CD's
        ``SiamEncoderDecoder`` calls its neck), it returns the pair
        ``([map_a], [map_b])`` that :class:`BITHead` takes.
        """
        if inputs_b is not None:
            return self.forward(inputs), self.forward(inputs_b)
        if isinstance(inputs, torch.Tensor):
            inputs = [inputs]
        levels = []
        for idx, factor, channels in zip(self.in_index, self.scale_factors, self.in_channels):
            x = inputs[idx]
            if x.dim() != 4 or x.shape[1] != channels:
                raise PeraConfigError(
                    f'ChangeFeatureProjection: level {idx} should be (B, {channels}, h, w), '
                    f'got {tuple(x.shape)}'
                )
            levels.append(self._resize(x, factor))
        sizes = {tuple(x.shape[-2:]) for x in levels}
        if len(sizes) != 1:
            raise PeraConfigError(
                f'ChangeFeatureProjection: the resized levels have different sizes {sorted(sizes)}'
            )
        return [self.proj(torch.cat(levels, dim=1))]
