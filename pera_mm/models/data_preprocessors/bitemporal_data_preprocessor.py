# Copyright (c) pera-mm contributors. All rights reserved.
"""Data preprocessor for bi-temporal (change-detection) inputs stacked along channels."""

from numbers import Number
from typing import Any, Dict, List, Optional, Sequence

import torch
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError


@MODELS.register_module()
class BitemporalDataPreProcessor(SegDataPreProcessor):
    """Normalise, pad and stack image pairs given as one (2 * C, H, W) tensor per sample.

    Each sample's ``inputs`` holds date A's C bands followed by date B's C bands (what
    ``SiameseEncoderDecoder`` splits again). Per sample, in this order:

    1. ``bgr_to_rgb`` / ``rgb_to_bgr``: reverse the 3 bands of each date (C must be 3);
    2. cast to float32 and, with ``pixel_scale``, divide by it;
    3. with ``mean`` / ``std``: ``(x - mean) / std`` per band; C values apply to both dates,
       2 * C values give each date its own statistics;

    then padding, stacking and the padding metadata exactly as :class:`SegDataPreProcessor`.

    ``pixel_scale=255.0, mean=[0.5] * 3, std=[0.5] * 3`` is the reference BIT
    normalisation ``x = (u / 255 - 0.5) / 0.5`` (torchvision's ``to_tensor`` then
    ``normalize(0.5, 0.5)``), bit for bit. MMSeg's ``mean=[127.5] * 3, std=[127.5] * 3``
    is the same up to fp32 rounding (6e-8), which already moves BIT's input gradients by
    1e-4 through an exact max-pool tie (see ``docs/change_detection.md``).

    Args:
        mean (Sequence[Number], optional): per-band means (C or 2 * C values).
        std (Sequence[Number], optional): per-band standard deviations (as ``mean``).
        pixel_scale (Number, optional): divide the raw values by this first (255 for 8-bit
            images whose mean/std are given in [0, 1] units).
        size, size_divisor, pad_val, seg_pad_val, batch_augments, test_cfg: as
            :class:`SegDataPreProcessor` (``pad_val`` is in normalised units).
        bgr_to_rgb (bool): reverse the bands of each date (3-band dates only).
        rgb_to_bgr (bool): the same reversal, named the other way.
    """

    def __init__(
        self,
        mean: Optional[Sequence[Number]] = None,
        std: Optional[Sequence[Number]] = None,
        pixel_scale: Optional[Number] = None,
        size: Optional[tuple] = None,
        size_divisor: Optional[int] = None,
        pad_val: Number = 0,
        seg_pad_val: Number = 255,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        batch_augments: Optional[List[dict]] = None,
        test_cfg: Optional[dict] = None,
    ):
        super().__init__(
            mean=None,
            std=None,
            size=size,
            size_divisor=size_divisor,
            pad_val=pad_val,
            seg_pad_val=seg_pad_val,
            batch_augments=batch_augments,
            test_cfg=test_cfg,
        )
        if bgr_to_rgb and rgb_to_bgr:
            raise PeraConfigError(
                'BitemporalDataPreProcessor: bgr_to_rgb and rgb_to_bgr cannot both be True'
            )
        self.reverse_bands = bool(bgr_to_rgb or rgb_to_bgr)
        if (mean is None) != (std is None):
            raise PeraConfigError(
                'BitemporalDataPreProcessor: give both mean and std, or neither '
                f'(mean={mean!r}, std={std!r})'
            )
        if mean is not None and len(mean) != len(std):
            raise PeraConfigError(
                f'BitemporalDataPreProcessor: mean has {len(mean)} values but std {len(std)}'
            )
        if pixel_scale is not None and not (isinstance(pixel_scale, Number) and pixel_scale > 0):
            raise PeraConfigError(
                f'BitemporalDataPreProcessor: pixel_scale must be a number > 0, got {pixel_scale!r}'
            )
        self.pixel_scale = None if pixel_scale is None else float(pixel_scale)
        self.normalize_dates = mean is not None
        if self.normalize_dates:
            self.register_buffer('mean', torch.tensor(mean, dtype=torch.float32), False)
            self.register_buffer('std', torch.tensor(std, dtype=torch.float32), False)

    def _per_band(self, values: torch.Tensor, num_bands: int) -> torch.Tensor:
        per_date = num_bands // 2
        if values.numel() == per_date:
            values = values.repeat(2)
        elif values.numel() != num_bands:
            raise PeraConfigError(
                f'BitemporalDataPreProcessor: mean/std have {values.numel()} values; expected '
                f'{per_date} (one per band of a date) or {num_bands} (per band of both dates)'
            )
        return values.view(-1, 1, 1)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[0] % 2:
            raise PeraDataError(
                "BitemporalDataPreProcessor: each input must be (2 * C, H, W), date A's C "
                f"bands then date B's, got shape {tuple(x.shape)}"
            )
        per_date = x.shape[0] // 2
        if self.reverse_bands:
            if per_date != 3:
                raise PeraDataError(
                    'BitemporalDataPreProcessor: bgr_to_rgb/rgb_to_bgr needs 3 bands per date, '
                    f'got {per_date}'
                )
            x = x[[2, 1, 0, 5, 4, 3]]
        x = x.float()
        if self.pixel_scale is not None:
            x = x / self.pixel_scale
        if self.normalize_dates:
            x = (x - self._per_band(self.mean, x.shape[0])) / self._per_band(self.std, x.shape[0])
        return x

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        """Normalise each date, then pad and stack like :class:`SegDataPreProcessor`."""
        data = self.cast_data(data)
        inputs = [self._prepare(x) for x in data['inputs']]
        return super().forward(
            dict(inputs=inputs, data_samples=data.get('data_samples', None)), training
        )
