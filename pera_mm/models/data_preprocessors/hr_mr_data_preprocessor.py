# Copyright (c) pera-mm contributors. All rights reserved.
"""Data preprocessor of co-registered MR/HR pairs (cross-scale pretraining)."""

from numbers import Number
from typing import Optional, Sequence

import torch
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError
from .multiband_data_preprocessor import MultiBandDataPreProcessor


@MODELS.register_module()
class HRMRDataPreProcessor(MultiBandDataPreProcessor):
    """Normalise MR and HR batches band by band, each with its own statistics.

    ``inputs`` is ``[mr, hr]`` as packed by :class:`PackHRMRInputs`: two (B, C, H, W)
    batches (``default_collate``) or two lists of (C, H, W) tensors
    (``pseudo_collate``). MR: ``(x / pixel_scale - mean) / std``; HR: the same with
    ``hr_pixel_scale``, ``hr_mean``, ``hr_std`` (default: the MR values), because two
    sensors (e.g. Sentinel-2 and VENµS) have their own radiometry. Returns
    ``dict(inputs=[mr (B, C, H, W), hr (B, C, sH, sW)], data_samples=...)``.

    Checks, each a one-line :class:`PeraDataError` naming the batch's first file:
    both have ``num_bands`` bands; the HR size is s x the MR size, s being the data
    samples' ``scale`` (or, without one, the same integer ratio on both sides).

    Args:
        num_bands (int): bands of both images.
        mean, std (Sequence[Number], optional): MR per-band statistics (after
            ``pixel_scale``), ``num_bands`` values or one.
        hr_mean, hr_std (Sequence[Number], optional): HR statistics; default the MR ones.
        pixel_scale (Number, optional): MR raw values are divided by it first.
        hr_pixel_scale (Number, optional): the same for HR; default ``pixel_scale``.
        non_blocking (bool): non-blocking host-to-device copies.
    """

    def __init__(
        self,
        num_bands: int,
        mean: Optional[Sequence[Number]] = None,
        std: Optional[Sequence[Number]] = None,
        hr_mean: Optional[Sequence[Number]] = None,
        hr_std: Optional[Sequence[Number]] = None,
        pixel_scale: Optional[Number] = None,
        hr_pixel_scale: Optional[Number] = None,
        non_blocking: bool = False,
    ):
        super().__init__(num_bands, mean, std, pixel_scale, non_blocking)
        name = type(self).__name__
        if (hr_mean is None) != (hr_std is None):
            raise PeraConfigError(f'{name}: give both hr_mean and hr_std, or neither')
        if hr_mean is not None and mean is None:
            raise PeraConfigError(f'{name}: hr_mean/hr_std need the MR mean/std too')
        try:
            self.hr = MultiBandDataPreProcessor(
                num_bands,
                mean if hr_mean is None else hr_mean,
                std if hr_std is None else hr_std,
                pixel_scale if hr_pixel_scale is None else hr_pixel_scale,
            )
        except PeraConfigError as err:
            raise PeraConfigError(str(err).replace('MultiBandDataPreProcessor: ', f'{name}: hr_'))

    def _batch(self, view, samples, owner) -> torch.Tensor:
        if isinstance(view, torch.Tensor):
            return view
        return owner._stack(view, samples)

    def _scale(self, samples):
        for ds in samples or []:
            scale = ds.get('scale') if isinstance(ds, dict) else getattr(ds, 'scale', None)
            if scale is not None:
                return int(scale)
        return None

    def forward(self, data: dict, training: bool = False) -> dict:
        """Move to the device; normalise MR and HR; check their sizes."""
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, torch.Tensor) or len(inputs) != 2:
            raise PeraDataError(
                f'{self._first_file(samples)}: {type(self).__name__} expects inputs=[mr, hr] '
                f'(PackHRMRInputs), got {type(inputs).__name__} of length {len(inputs)}'
            )
        mr = self._prepare(self._batch(inputs[0], samples, self), samples)
        hr = self.hr._prepare(self._batch(inputs[1], samples, self.hr), samples)
        (h, w), (hh, hw) = mr.shape[-2:], hr.shape[-2:]
        scale = self._scale(samples)
        ok = (
            (hh, hw) == (scale * h, scale * w)
            if scale is not None
            else hh % h == 0 and hw % w == 0 and hh // h == hw // w
        )
        if not ok or mr.shape[0] != hr.shape[0]:
            raise PeraDataError(
                f'{self._first_file(samples)}: HR batch {tuple(hr.shape)} is not '
                f'{"scale " + str(scale) if scale else "an integer multiple"} x the MR batch '
                f'{tuple(mr.shape)}'
            )
        return dict(inputs=[mr, hr], data_samples=samples)
