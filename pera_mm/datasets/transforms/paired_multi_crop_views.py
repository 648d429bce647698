# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA multi-crop views of the MR image, plus the HR pair of every global crop."""

from typing import List, Optional, Tuple

import numpy as np
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError, PeraDataError
from .multi_crop_views import Geometry, PerAMultiCropViews
from .paired_loading import check_scale, pair_name

#: photometric ops of PerAMultiCropViews; all assume 3-band 8-bit RGB
RGB_ONLY_OPS = ('jitter_prob', 'gray_prob', 'blur_prob', 'solarize_prob')


@TRANSFORMS.register_module()
class PairedPerAMultiCropViews(PerAMultiCropViews):
    """PerA's views of the MR image ``img``, and the HR crop of each global crop.

    The MR views are :class:`PerAMultiCropViews`'s (same boxes, flips, sizes and
    order). For global crop k, drawn as the MR box (top, left, h, w) and rendered to
    G x G, the HR crop is the HR window (s * top, s * left, s * h, s * w) of
    ``hr_img`` (the same ground, since HR is exactly s x the MR size) rendered to
    sG x sG with the same interpolation rule and the same flips. Both views are
    the same linear map of one ground box, so MR patch (u, v) of the G / P grid and
    HR patches (s * u + i, s * v + j) of the sG / P grid cover the same ground for
    any box; with a box of G px (no resize) the two crops are exact windows of the
    source arrays. Local crops get no HR pair (PerA's component reads the global
    crops only). With ``spatial_alignment=False`` the HR crop pairs the student's
    box.

    Colour: PerA's photometric ops (jitter with hue in HSV, greyscale, and the
    blur/solarize of DINO-style baselines) assume 3-band 8-bit RGB. On any other
    band count they must all be off for both roles (``jitter_prob=0,
    gray_prob=0, blur_prob=0, solarize_prob=0``), else a one-line
    :class:`PeraConfigError`; the student and teacher views then differ only by
    their disjoint masks. On 3-band uint8 input they apply to the MR views as in
    :class:`PerAMultiCropViews`; the HR crops are never colour-augmented.

    Any dtype and band count (H, W, C) is accepted (float32 reflectance, uint16 DN).

    Required keys: ``img`` (H, W, C); with ``with_hr``: ``hr_img`` (sH, sW, C) and
    ``scale``. Modified keys: ``img`` becomes the list ``[student globals...,
    teacher globals..., student locals..., teacher locals...]``. Added keys:
    ``num_global_crops``, ``num_local_crops``, ``global_crop_boxes`` (the MR
    geometries (top, left, h, w, hflip, vflip) of the student global crops) and,
    with ``with_hr``, ``hr_views`` (the nG HR crops, in global-crop order) and
    ``hr_global_crop_boxes``. :class:`PackPerAViewsWithHR` appends ``hr_views``
    after the views, the order :class:`PerA` expects.

    Args:
        num_bands (int, optional): bands of the input; with a value other than 3 the
            colour configs are checked when the transform is built.
        with_hr (bool): cut the HR crops (SA models). False for the MR-only and
            HR-only models, which then see exactly PerA's views of ``img``.
        **kwargs: :class:`PerAMultiCropViews` arguments.
    """

    def __init__(self, num_bands: Optional[int] = None, with_hr: bool = True, **kwargs):
        super().__init__(**kwargs)
        if num_bands is not None:
            num_bands = check_scale(num_bands, type(self).__name__, 'num_bands')
        if not isinstance(with_hr, bool):
            raise PeraConfigError(f'{type(self).__name__}: with_hr must be a bool, got {with_hr!r}')
        self.num_bands, self.with_hr = num_bands, with_hr
        self._drawn: List[Geometry] = []
        if num_bands is not None:
            self._check_colour(num_bands)

    def _check_colour(self, bands: int) -> None:
        """Colour ops on a band count other than 3 are a one-line config error."""
        if bands == 3:
            return
        roles = (('student_color', self.student_color), ('teacher_color', self.teacher_color))
        for role, cfg in roles:
            on = [k for k in RGB_ONLY_OPS if cfg[k] > 0]
            if on:
                raise PeraConfigError(
                    f'{type(self).__name__}: {role}.{on[0]} is {cfg[on[0]]} but the input has '
                    f'{bands} bands; PerA colour augmentation is RGB-only: set '
                    f'{", ".join(k + "=0" for k in RGB_ONLY_OPS)} for both roles'
                )

    def _check_inputs(self, results: dict) -> Optional[int]:
        name = type(self).__name__
        img = results.get('img')
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and min(img.shape) > 0):
            raise PeraDataError(
                f"{name} needs results['img'] as an (H, W, C) array, got "
                f'{type(img).__name__} {getattr(img, "shape", "")}'
            )
        bands = img.shape[2]
        if self.num_bands is not None and bands != self.num_bands:
            raise PeraDataError(
                f'{results.get("img_path", "<MR>")}: {bands} bands, expected num_bands='
                f'{self.num_bands}'
            )
        self._check_colour(bands)
        if bands == 3 and img.dtype != np.uint8 and self._colour_on():
            raise PeraConfigError(
                f'{name}: colour augmentation needs uint8 RGB, got {img.dtype}; turn it off'
            )
        if not self.with_hr:
            return None
        scale = check_scale(results.get('scale'), name, "results['scale']")
        hr = results.get('hr_img')
        pair = pair_name(results.get('img_path', '<MR>'), results.get('hr_img_path', '<HR>'))
        if not isinstance(hr, np.ndarray) or hr.ndim != 3:
            raise PeraDataError(f"{pair}: {name} needs results['hr_img'] as an (sH, sW, C) array")
        if hr.shape != (img.shape[0] * scale, img.shape[1] * scale, bands):
            raise PeraDataError(
                f'{pair}: {name} needs the HR image at scale {scale} x the MR size with the same '
                f'bands, got MR {img.shape} and HR {hr.shape}'
            )
        return scale

    def _colour_on(self) -> bool:
        cfgs = (self.student_color, self.teacher_color)
        return any(cfg[k] > 0 for cfg in cfgs for k in RGB_ONLY_OPS)

    def _sample_geometry(self, height: int, width: int, scale: Tuple[float, float]) -> Geometry:
        """PerA's box draw, recorded so that the HR crops can reuse the global boxes."""
        geometry = super()._sample_geometry(height, width, scale)
        self._drawn.append(geometry)
        return geometry

    @staticmethod
    def hr_geometry(geometry: Geometry, scale: int) -> Geometry:
        """The HR box of an MR box: every coordinate times ``scale``, same flips."""
        top, left, h, w, hflip, vflip = geometry
        return scale * top, scale * left, scale * h, scale * w, hflip, vflip

    def transform(self, results: dict) -> dict:
        """Replace ``img`` by PerA's views; add the HR global crops as ``hr_views``."""
        scale = self._check_inputs(results)
        img = results['img']
        self._drawn: List[Geometry] = []
        g_student, g_teacher = self._pairs(
            img, self.num_global_crops, self.global_crop_size, self.global_crop_scale
        )
        # student boxes; without spatial alignment the teacher draws every 2nd box
        boxes = self._drawn[:: 1 if self.spatial_alignment else 2]
        l_student, l_teacher = self._pairs(
            img, self.num_local_crops, self.local_crop_size, self.local_crop_scale
        )
        results['img'] = g_student + g_teacher + l_student + l_teacher
        results['num_global_crops'] = self.num_global_crops
        results['num_local_crops'] = self.num_local_crops
        results['global_crop_boxes'] = boxes
        if scale is not None:
            hr_boxes = [self.hr_geometry(b, scale) for b in boxes]
            size = scale * self.global_crop_size
            results['hr_views'] = [self._render(results['hr_img'], b, size) for b in hr_boxes]
            results['hr_global_crop_boxes'] = hr_boxes
        return results

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', num_bands={self.num_bands}, with_hr={self.with_hr})'
