# Copyright (c) pera-mm contributors. All rights reserved.
"""Geometric augmentation applied identically to an MR image and its HR pair."""

from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError, PeraDataError
from .paired_loading import check_scale, pair_name

FLIP_DIRECTIONS = ('horizontal', 'vertical')


def _pair(results: dict) -> str:
    return pair_name(results.get('img_path', '<MR>'), results.get('hr_img_path', '<HR>'))


def _check_pair_shapes(results: dict, owner: str) -> int:
    """``results['scale']`` after checking that ``hr_img`` is exactly s x ``img``."""
    scale = check_scale(results.get('scale'), owner, "results['scale']")
    mr, hr = results['img'], results['hr_img']
    if hr.shape[:2] != (mr.shape[0] * scale, mr.shape[1] * scale):
        raise PeraDataError(
            f'{_pair(results)}: {owner} needs the HR image at scale {scale} x the MR size, got '
            f'MR {mr.shape[0]}x{mr.shape[1]} and HR {hr.shape[0]}x{hr.shape[1]}'
        )
    return scale


@TRANSFORMS.register_module()
class PairedRandomCrop(BaseTransform):
    """Crop the same ground window from the MR image and its HR pair, on the patch grid.

    The MR crop is ``crop_size`` pixels at an offset (y0, x0) whose coordinates are
    multiples of ``patch_size`` (drawn uniformly among those that fit); the HR crop is
    the window (s * y0, s * x0) of s * ``crop_size`` pixels. MR patch (u, v) of the crop
    is then MR patch (y0 / P + u, x0 / P + v) of the image, and covers the same ground as
    the HR patches (s * u + i, s * v + j), 0 <= i, j < s, of the HR crop. ``crop_size``
    must be a multiple of ``patch_size``; an image smaller than it is a one-line error.

    Required Keys: ``img``, ``hr_img``, ``scale``. Modified Keys: ``img``, ``hr_img``,
    ``img_shape``, ``hr_img_shape``. Added Keys: ``crop_box`` and ``hr_crop_box``
    ((y0, x0, y1, x1) in the image before the crop).

    Args:
        crop_size (int | tuple[int, int]): MR crop (h, w) in pixels.
        patch_size (int): the encoder's patch size. Defaults to 16.
    """

    def __init__(self, crop_size: Union[int, Sequence[int]], patch_size: int = 16):
        name = type(self).__name__
        self.patch_size = check_scale(patch_size, name, 'patch_size')
        size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise PeraConfigError(f'{name}: crop_size must be an int or (h, w), got {crop_size!r}')
        if size[0] % patch_size or size[1] % patch_size:
            raise PeraConfigError(
                f'{name}: crop_size {size} is not a multiple of patch_size {patch_size}'
            )
        self.crop_size: Tuple[int, int] = size

    def _offset(self, length: int, crop: int, results: dict) -> int:
        if length < crop:
            raise PeraDataError(
                f'{_pair(results)}: the MR image ({results["img"].shape[0]}x'
                f'{results["img"].shape[1]}) is smaller than crop_size {self.crop_size}'
            )
        return int(np.random.randint((length - crop) // self.patch_size + 1)) * self.patch_size

    def transform(self, results: dict) -> dict:
        """Draw one grid-aligned offset and crop both images."""
        scale = _check_pair_shapes(results, type(self).__name__)
        (ch, cw), mr = self.crop_size, results['img']
        y0, x0 = self._offset(mr.shape[0], ch, results), self._offset(mr.shape[1], cw, results)
        results['img'] = np.ascontiguousarray(mr[y0 : y0 + ch, x0 : x0 + cw])
        hy, hx, hh, hw = scale * y0, scale * x0, scale * ch, scale * cw
        results['hr_img'] = np.ascontiguousarray(results['hr_img'][hy : hy + hh, hx : hx + hw])
        results['crop_box'] = (y0, x0, y0 + ch, x0 + cw)
        results['hr_crop_box'] = (hy, hx, hy + hh, hx + hw)
        results['img_shape'], results['hr_img_shape'] = (ch, cw), (hh, hw)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(crop_size={self.crop_size}, patch_size={self.patch_size})'


@TRANSFORMS.register_module()
class PairedRandomFlip(BaseTransform):
    """Flip the MR image and its HR pair together (one draw for both).

    Each direction in ``direction`` is drawn independently with probability ``prob``
    (horizontal = left-right, vertical = up-down), and the same flips are applied to
    both images, so the pair stays co-registered.

    Required Keys: ``img``, ``hr_img``. Modified Keys: ``img``, ``hr_img``.
    Added Keys: ``flip`` (bool), ``flip_direction`` (list of the directions applied).

    Args:
        prob (float): probability of each flip. Defaults to 0.5.
        direction (str | Sequence[str]): 'horizontal', 'vertical' or both.
    """

    def __init__(self, prob: float = 0.5, direction: Union[str, Sequence[str]] = 'horizontal'):
        name = type(self).__name__
        directions = [direction] if isinstance(direction, str) else list(direction)
        if not directions or any(d not in FLIP_DIRECTIONS for d in directions):
            raise PeraConfigError(
                f'{name}: direction must be among {FLIP_DIRECTIONS}, got {direction!r}'
            )
        if not 0.0 <= prob <= 1.0:
            raise PeraConfigError(f'{name}: prob must be in [0, 1], got {prob!r}')
        self.prob, self.directions = float(prob), directions

    def transform(self, results: dict) -> dict:
        """Draw the flips once and apply them to both images."""
        applied = [d for d in self.directions if np.random.rand() < self.prob]
        for d in applied:
            axis = 1 if d == 'horizontal' else 0
            for key in ('img', 'hr_img'):
                results[key] = np.ascontiguousarray(np.flip(results[key], axis=axis))
        results['flip'], results['flip_direction'] = bool(applied), applied
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob}, direction={self.directions})'
