# Copyright (c) pera-mm contributors. All rights reserved.
"""The ResNet-18 trunk of the reference BIT-R18 change detector, with its stride quirks."""

from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError


class BITBasicBlock(nn.Module):
    """ResNet basic block (torchvision layout: conv1/bn1/conv2/bn2/downsample.{0,1}).

    Like BIT's copy of it, it has no dilation: a stage asked to dilate instead of striding
    becomes a plain stride-1 stage.

    Args:
        in_channels (int): input channels.
        channels (int): output channels.
        stride (int): stride of the first conv (and of the 1x1 downsample conv).
        norm_cfg (dict): norm layer config.
    """

    def __init__(self, in_channels: int, channels: int, stride: int, norm_cfg: dict):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, channels)[1]
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, channels)[1]
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                build_norm_layer(norm_cfg, channels)[1],
            )
        else:
            self.downsample = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual basic block."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@MODELS.register_module()
class BITResNet18(BaseModule):
    """The image encoder of BIT-R18 (``BASE_Transformer.forward_single``), one date at a time.

    A torchvision-layout ResNet-18 (stem conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3/2), then:

    - ``layer1`` at stride 1 and ``layer2`` at stride 2 (1/8);
    - ``layer3`` (``num_stages >= 4``) and ``layer4`` (``num_stages == 5``) at **stride 1,
      undilated**: BIT asks torchvision for ``replace_stride_with_dilation=[False, True,
      True]`` but its ``BasicBlock`` drops the dilation, so the trunk stays at 1/8 with
      plain 3x3 convs;
    - a x2 **nearest** upsample to 1/4 (``upsample_2x``) and ``conv_pred``, a conv3x3 with
      bias to ``out_channels`` (BIT's token width, 32).

    ``num_stages`` is BIT's ``resnet_stages_num`` (4 in every shipped BIT setting; 3 stops
    after layer2, 5 adds layer4). The output is a 1-tuple with the (B, out_channels, H/4,
    W/4) map. Parameter names follow torchvision, so ImageNet weights load with
    ``init_cfg=dict(type='Pretrained', checkpoint='resnet18-f37072fd.pth')`` (torchvision's
    file; its ``fc`` and, for ``num_stages < 5``, ``layer4`` keys are reported unused and
    ``conv_pred`` as missing). Without ``init_cfg`` the layers keep PyTorch's defaults.

    Args:
        in_channels (int): input bands of one date.
        out_channels (int): channels of ``conv_pred``'s output.
        num_stages (int): 3, 4 or 5 (see above).
        upsample_2x (bool): upsample the 1/8 map to 1/4 before ``conv_pred``.
        norm_cfg (dict): norm layers of the trunk (BN; SyncBN for multi-GPU training).
        init_cfg (dict, optional): initialisation config.
    """

    _stage_channels = (64, 128, 256, 512)
    _stage_strides = (1, 2, 1, 1)

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 32,
        num_stages: int = 4,
        upsample_2x: bool = True,
        norm_cfg: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if num_stages not in (3, 4, 5):
            raise PeraConfigError(
                f'BITResNet18: num_stages must be 3, 4 or 5 (BIT resnet_stages_num), got '
                f'{num_stages!r}'
            )
        norm_cfg = dict(type='BN') if norm_cfg is None else norm_cfg
        self.num_stages = num_stages
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, 64)[1]
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        width = 64
        for i in range(num_stages - 1):
            channels, stride = self._stage_channels[i], self._stage_strides[i]
            stage = nn.Sequential(
                BITBasicBlock(width, channels, stride, norm_cfg),
                BITBasicBlock(channels, channels, 1, norm_cfg),
            )
            self.add_module(f'layer{i + 1}', stage)
            width = channels
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest') if upsample_2x else None
        self.conv_pred = nn.Conv2d(width, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor]:
        """Encode one date's normalised image (B, in_channels, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages - 1):
            x = getattr(self, f'layer{i + 1}')(x)
        if self.upsample is not None:
            x = self.upsample(x)
        return (self.conv_pred(x),)
