# Copyright (c) pera-mm contributors. All rights reserved.
"""Siamese encoder-decoder for change detection on MMSeg alone (no Open-CD)."""

from typing import List, Tuple

import torch
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from ...utils.errors import PeraDataError


@MODELS.register_module()
class SiameseEncoderDecoder(EncoderDecoder):
    """One shared-weight encoder run on both dates, then a change head on the pair.

    ``inputs`` is one (B, 2 * C, H, W) tensor: date A's C bands, then date B's (the layout
    :class:`BitemporalDataPreProcessor` produces). :meth:`extract_feat` splits it in half
    along the channels and runs the backbone (and the neck, if any) on each date
    **separately**, so train-mode BatchNorm sees each date's own batch statistics, as in
    the reference BIT (``forward_single`` per date). It returns the pair
    ``(feats_a, feats_b)``; the decode head (e.g. :class:`BITHead`) and any auxiliary
    head receive that pair. Everything else is :class:`EncoderDecoder`: CE loss through
    the head's ``loss_by_feat``, whole or sliding-window inference on the 2C-band input,
    ``pred_sem_seg`` with 1 = changed.

    Args:
        backbone (dict): encoder of one date (C input bands).
        decode_head (dict): head taking ``(feats_a, feats_b)``.
        neck (dict, optional): applied to each date's backbone output.
        auxiliary_head (dict | list[dict], optional): heads taking the same pair.
        train_cfg, test_cfg, data_preprocessor, pretrained, init_cfg: as
            :class:`EncoderDecoder`.
    """

    def extract_date_feat(self, image: torch.Tensor) -> List[torch.Tensor]:
        """Features of one date's (B, C, H, W) image: the backbone, then the neck."""
        x = self.backbone(image)
        if self.with_neck:
            x = self.neck(x)
        return x

    def extract_feat(self, inputs: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Split the (B, 2C, H, W) pair and encode each date with the shared encoder."""
        if inputs.dim() != 4 or inputs.shape[1] % 2:
            raise PeraDataError(
                "SiameseEncoderDecoder: inputs must be (B, 2 * C, H, W), date A's C bands "
                f"then date B's, got shape {tuple(inputs.shape)}"
            )
        image_a, image_b = inputs.chunk(2, dim=1)
        return self.extract_date_feat(image_a), self.extract_date_feat(image_b)
