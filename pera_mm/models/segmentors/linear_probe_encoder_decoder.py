# Copyright (c) pera-mm contributors. All rights reserved.
"""Encoder-decoder with a frozen encoder, for linear-probe segmentation."""

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class LinearProbeEncoderDecoder(EncoderDecoder):
    """MMSeg's :class:`EncoderDecoder` whose backbone never changes.

    The backbone (any of our ViTs with ``out_type='featmap'``: ``PerAViT``,
    ``IJEPAViT``, ``LatentMIMViT``) has ``requires_grad=False`` from construction (so
    no optimizer step touches it: AdamW skips tensors without gradients, weight decay
    included), always stays in eval mode (no dropout / drop path) and runs under
    ``torch.no_grad``. Only the decode head learns. A neck is refused: a linear probe
    reads the encoder's features directly.
    """

    def __init__(self, backbone: dict, decode_head: dict, neck=None, **kwargs):
        if neck is not None:
            raise PeraConfigError('LinearProbeEncoderDecoder: a linear probe takes no neck')
        super().__init__(backbone=backbone, decode_head=decode_head, **kwargs)
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True):
        """Set the mode of the heads; the backbone stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def extract_feat(self, inputs: torch.Tensor):
        """The frozen backbone's features, without autograd."""
        with torch.no_grad():
            return self.backbone(inputs)
