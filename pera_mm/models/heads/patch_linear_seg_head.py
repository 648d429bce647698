# Copyright (c) pera-mm contributors. All rights reserved.
"""Per-patch linear segmentation head of the linear probe (pixel-shuffled logits)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class PatchLinearSegHead(BaseDecodeHead):
    """One linear map per patch feature, D -> classes * p^2, pixel-shuffled to pixels.

    The linear-probe head of the cross-scale evaluation: each patch feature of the
    (B, D, h, w) map predicts the logits of its own p x p pixels, nothing mixes
    patches, and the (B, classes * p^2, h, w) output is rearranged by
    ``pixel_shuffle`` into (B, classes, h * p, w * p): channel ``c * p^2 + i * p + j``
    of patch (u, v) is the logit of class c at pixel (u * p + i, v * p + j). The map is
    a 1 x 1 convolution with bias (initialised N(0, 0.01) like MMSeg's heads), no
    norm, no activation; dropout off by default.

    Args:
        in_channels (int): the backbone's feature width D.
        num_classes (int): classes.
        patch_size (int): the backbone's patch size p.
        **kwargs: :class:`BaseDecodeHead` arguments (``loss_decode``,
            ``ignore_index``, ``in_index``, ``dropout_ratio``, ...).
    """

    def __init__(self, in_channels: int, num_classes: int, patch_size: int, **kwargs):
        if not isinstance(patch_size, int) or patch_size < 1:
            raise PeraConfigError(
                f'PatchLinearSegHead: patch_size must be a positive int, got {patch_size!r}'
            )
        kwargs.setdefault('dropout_ratio', 0.0)
        super().__init__(in_channels, in_channels, num_classes=num_classes, **kwargs)
        self.patch_size = patch_size
        self.conv_seg = nn.Conv2d(in_channels, self.out_channels * patch_size**2, kernel_size=1)

    def forward(self, inputs) -> torch.Tensor:
        """(B, classes, h * p, w * p) logits of the selected (B, D, h, w) feature map."""
        x = self._transform_inputs(inputs)
        if self.dropout is not None:
            x = self.dropout(x)
        return F.pixel_shuffle(self.conv_seg(x), self.patch_size)
