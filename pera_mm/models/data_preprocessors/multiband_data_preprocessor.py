# Copyright (c) pera-mm contributors. All rights reserved.
"""Data preprocessor for images with any number of bands (self-supervised pretraining)."""

from numbers import Number
from typing import Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError


@MODELS.register_module()
class MultiBandDataPreProcessor(BaseDataPreprocessor):
    """Stack, check, scale and normalise N-band images, band by band.

    MMPretrain's ``SelfSupDataPreprocessor`` accepts 1 or 3 channels only (and its
    ``to_rgb`` silently keeps 3). Here every band has its own statistics, because
    radiometric scales differ by ~100x between data sets (8-bit RGB, uint16 DN,
    reflectance):

    ``x = (x.float() / pixel_scale - mean) / std`` per band,

    e.g. Sentinel-2 L1C DN: ``pixel_scale=10000`` and mean/std in reflectance. A batch
    whose band count is not ``num_bands`` is a one-line :class:`PeraDataError` naming
    the batch's first file (``img_path`` in the metainfo, when packed).

    Inputs: a (B, C, H, W) tensor (``default_collate``), a list of (C, H, W) tensors
    of one size (``pseudo_collate``), or a list of such batches (multi-view). No
    band reordering and no padding.

    Args:
        num_bands (int): bands every image must have.
        mean (Sequence[Number], optional): per-band means (``num_bands`` values, or one
            for all), in units after ``pixel_scale``.
        std (Sequence[Number], optional): per-band standard deviations (as ``mean``).
        pixel_scale (Number, optional): divide the raw values by this first.
        non_blocking (bool): non-blocking host-to-device copies.
    """

    def __init__(
        self,
        num_bands: int,
        mean: Optional[Sequence[Number]] = None,
        std: Optional[Sequence[Number]] = None,
        pixel_scale: Optional[Number] = None,
        non_blocking: bool = False,
    ):
        super().__init__(non_blocking=non_blocking)
        name = type(self).__name__
        if not isinstance(num_bands, int) or isinstance(num_bands, bool) or num_bands < 1:
            raise PeraConfigError(f'{name}: num_bands must be a positive int, got {num_bands!r}')
        if (mean is None) != (std is None):
            raise PeraConfigError(f'{name}: give both mean and std, or neither')
        self.num_bands = num_bands
        self.normalize = mean is not None
        if self.normalize:
            for field, values in (('mean', mean), ('std', std)):
                if len(values) not in (1, num_bands):
                    raise PeraConfigError(
                        f'{name}: {field} has {len(values)} values; expected {num_bands} (one '
                        f'per band) or 1'
                    )
            if any(not s > 0 for s in std):
                raise PeraConfigError(f'{name}: std values must be > 0, got {list(std)}')
            self.register_buffer(
                'mean', torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False
            )
            self.register_buffer(
                'std', torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False
            )
        if pixel_scale is not None and not (isinstance(pixel_scale, Number) and pixel_scale > 0):
            raise PeraConfigError(f'{name}: pixel_scale must be a number > 0, got {pixel_scale!r}')
        self.pixel_scale = None if pixel_scale is None else float(pixel_scale)

    def _first_file(self, data_samples) -> str:
        for ds in data_samples or []:
            path = getattr(ds, 'img_path', None) if not isinstance(ds, dict) else ds.get('img_path')
            if path is not None:
                return str(path)
        return '<unnamed batch>'

    def _prepare(self, batch: torch.Tensor, data_samples) -> torch.Tensor:
        if batch.dim() != 4 or batch.shape[1] != self.num_bands:
            bands = batch.shape[1] if batch.dim() == 4 else 'no band axis'
            raise PeraDataError(
                f'{self._first_file(data_samples)}: the batch has {bands} bands (shape '
                f'{tuple(batch.shape)}), expected num_bands={self.num_bands}'
            )
        if batch.dtype == torch.uint16:  # few kernels take uint16
            batch = batch.to(torch.int32)
        x = batch.float()
        if self.pixel_scale is not None:
            x = x / self.pixel_scale
        if self.normalize:
            x = (x - self.mean) / self.std
        return x

    def _stack(self, inputs, data_samples) -> torch.Tensor:
        shapes = {tuple(t.shape) for t in inputs}
        if len(shapes) != 1:
            raise PeraDataError(
                f'{self._first_file(data_samples)}: images of one batch differ in shape '
                f'{sorted(shapes)}; crop or resize them to one size'
            )
        return torch.stack(list(inputs))

    def forward(self, data: dict, training: bool = False) -> dict:
        """Move to the device, then check, scale and normalise every band."""
        data = self.cast_data(data)
        inputs, samples = data['inputs'], data.get('data_samples')
        if isinstance(inputs, torch.Tensor):
            inputs = self._prepare(inputs, samples)
        elif inputs and all(isinstance(t, torch.Tensor) and t.dim() == 3 for t in inputs):
            inputs = self._prepare(self._stack(inputs, samples), samples)
        else:
            inputs = [self._prepare(v, samples) for v in inputs]
        return dict(inputs=inputs, data_samples=samples)
