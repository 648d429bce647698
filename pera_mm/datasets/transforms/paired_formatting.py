# Copyright (c) pera-mm contributors. All rights reserved.
"""Packing of an MR/HR pair into the two-view ``inputs`` of a pretraining model."""

from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample

DEFAULT_META_KEYS = (
    'img_path',
    'hr_img_path',
    'scale',
    'sample_idx',
    'img_shape',
    'hr_img_shape',
    'crop_box',
    'hr_crop_box',
    'flip',
    'flip_direction',
    'false_hr',
)


def _to_chw_tensor(img: np.ndarray) -> torch.Tensor:
    img = img[..., None] if img.ndim == 2 else img
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackHRMRInputs(BaseTransform):
    """Pack ``inputs = [mr (C, H, W), hr (C, sH, sW)]`` and a :class:`DataSample`.

    A two-element list like MMPretrain's multi-view packing, so ``default_collate``
    gives ``[mr_batch, hr_batch]``; dtypes are kept (the data preprocessor casts).
    The data sample carries the ``meta_keys`` present in the results (paths, scale,
    crop boxes, flips, ...).

    Required Keys: ``img``, ``hr_img``.

    Args:
        meta_keys (Sequence[str]): keys copied into the data sample's metainfo when
            present.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """``dict(inputs=[mr, hr], data_samples=DataSample)``."""
        inputs = [_to_chw_tensor(results['img']), _to_chw_tensor(results['hr_img'])]
        metainfo = {k: results[k] for k in self.meta_keys if k in results}
        return dict(inputs=inputs, data_samples=DataSample(metainfo=metainfo))

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
