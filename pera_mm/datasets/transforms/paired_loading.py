# Copyright (c) pera-mm contributors. All rights reserved.
"""Loading of a co-registered high-/mid-resolution (HR/MR) image pair, with its checks."""

import math
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError
from .bitemporal_loading import GEOTIFF_SUFFIXES
from .load_multiband_image import NPY_LAYOUTS, read_multiband
from .loading import UnreadableImageError

#: an HR pixel size times the scale must match the MR pixel size to this relative tolerance
PIXEL_SIZE_RTOL = 1e-6
#: HR and MR origins may differ by at most this fraction of an HR pixel
ORIGIN_TOL_HR_PIXELS = 0.01


def pair_name(mr_path: str, hr_path: str) -> str:
    """How errors name a pair."""
    return f'pair (MR {mr_path}, HR {hr_path})'


def check_scale(value, owner: str, field: str = 'scale') -> int:
    """``value`` as a positive int scale, or a one-line config error."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise PeraConfigError(f'{owner}: {field} must be a positive int, got {value!r}')
    return value


def raster_georef(path: str):
    """``(crs, geotransform)`` of a GeoTIFF with a CRS, else None (PNG, .npy, no CRS)."""
    if not path.lower().endswith(GEOTIFF_SUFFIXES):
        return None
    import rasterio

    with rasterio.open(path) as src:
        return (src.crs, src.transform) if src.crs is not None else None


def hr_offset_in_hr_pixels(mr_geo, hr_geo, scale: int, pair: str):
    """Where the MR origin falls on the HR grid, as (row, col) HR pixels.

    Checks that the CRS agree, that the HR pixel (and its rotation terms) times
    ``scale`` is the MR pixel, and that the offset is a whole number of HR pixels.
    """
    (mr_crs, mr_t), (hr_crs, hr_t) = mr_geo, hr_geo
    if mr_crs != hr_crs:
        raise PeraDataError(f'{pair}: the CRS differ (MR {mr_crs}, HR {hr_crs})')
    terms = dict(a='x size', b='row rotation', d='column rotation', e='y size')
    for attr, name in terms.items():
        m, h = getattr(mr_t, attr), getattr(hr_t, attr)
        if not math.isclose(h * scale, m, rel_tol=PIXEL_SIZE_RTOL, abs_tol=1e-12):
            raise PeraDataError(
                f'{pair}: the geotransforms disagree: HR pixel {name} {h!r} x scale {scale} '
                f'= {h * scale!r}, but the MR pixel {name} is {m!r}'
            )
    col, row = ~hr_t @ (mr_t.c, mr_t.f)
    if abs(col - round(col)) > ORIGIN_TOL_HR_PIXELS or abs(row - round(row)) > ORIGIN_TOL_HR_PIXELS:
        raise PeraDataError(
            f'{pair}: the MR origin is at HR pixel (row {row:.3f}, col {col:.3f}), not on the '
            f'HR pixel grid'
        )
    return int(round(row)), int(round(col))


def check_georef(mr_path: str, hr_path: str, scale: int) -> None:
    """Both GeoTIFFs georeferenced alike: same CRS, HR pixel x s = MR pixel, same origin.

    Nothing is checked when neither file carries a CRS (PNG, .npy, plain TIFF); one
    georeferenced file and one not is an error.
    """
    pair = pair_name(mr_path, hr_path)
    mr_geo, hr_geo = raster_georef(mr_path), raster_georef(hr_path)
    if mr_geo is None and hr_geo is None:
        return
    if mr_geo is None or hr_geo is None:
        which = 'MR' if mr_geo is None else 'HR'
        raise PeraDataError(f'{pair}: the {which} file has no CRS but the other one has')
    offset = hr_offset_in_hr_pixels(mr_geo, hr_geo, scale, pair)
    if offset != (0, 0):
        raise PeraDataError(
            f'{pair}: the origins differ: the MR origin is at HR pixel (row {offset[0]}, col '
            f'{offset[1]}), expected (0, 0); cut the scenes with '
            f'tools/dataset_converters/cut_hr_mr_pairs.py'
        )


@TRANSFORMS.register_module()
class LoadHRMRPairFromFile(BaseTransform):
    """Load an MR image as ``img`` and its co-registered HR image as ``hr_img``.

    Both are (H, W, C) rasters of any band count (GeoTIFF via rasterio, PNG/JPEG,
    ``.npy``), values kept on their radiometric scale. With ``scale`` = s (from the
    results, i.e. the dataset, or this transform), every load checks, each failure a
    one-line error naming the pair:

    - HR and MR have ``num_bands`` bands (after ``bands``) and the same count;
    - the HR size is exactly s x the MR size;
    - two GeoTIFFs: same CRS, HR pixel size x s = MR pixel size and the same origin
      (``check_georef``);
    - both files exist (:class:`PeraFileNotFoundError`).

    Required Keys: ``img_path``, ``hr_img_path``, ``scale`` (unless given here).
    Added Keys: ``img``, ``hr_img``, ``scale``, ``img_shape``, ``ori_shape``,
    ``hr_img_shape``.

    Args:
        num_bands (int, optional): bands both images must have; None accepts any
            (equal) count.
        bands (Sequence[int], optional): band indices kept in both, in this order.
        scale (int, optional): overrides ``results['scale']``.
        check_georef (bool): compare the GeoTIFF georeferencing. Defaults to True.
        npy_layout (str): 'HWC' (default) or 'CHW' for ``.npy`` files.
        to_float32 (bool): cast both to float32.
    """

    def __init__(
        self,
        num_bands: Optional[int] = None,
        bands: Optional[Sequence[int]] = None,
        scale: Optional[int] = None,
        check_georef: bool = True,
        npy_layout: str = 'HWC',
        to_float32: bool = False,
    ):
        name = type(self).__name__
        if num_bands is not None:
            check_scale(num_bands, name, 'num_bands')
        if bands is not None and (
            isinstance(bands, (str, int))
            or not bands
            or not all(isinstance(b, int) and b >= 0 for b in bands)
        ):
            raise PeraConfigError(
                f'{name}: bands must be a list of band indices >= 0, got {bands!r}'
            )
        if num_bands is not None and bands is not None and len(bands) != num_bands:
            raise PeraConfigError(
                f'{name}: bands lists {len(bands)} bands but num_bands is {num_bands}'
            )
        if npy_layout not in NPY_LAYOUTS:
            raise PeraConfigError(
                f'{name}: npy_layout must be one of {NPY_LAYOUTS}, got {npy_layout!r}'
            )
        self.num_bands, self.bands = num_bands, None if bands is None else list(bands)
        self.scale = None if scale is None else check_scale(scale, name)
        self.check_georef, self.npy_layout, self.to_float32 = check_georef, npy_layout, to_float32

    def _read(self, path: str, which: str, pair: str) -> np.ndarray:
        try:
            img = read_multiband(path, self.npy_layout)
        except UnreadableImageError as err:
            if not osp.isfile(path):
                raise PeraFileNotFoundError(f'{pair}: the {which} file does not exist') from None
            raise PeraDataError(f'{pair}: cannot read the {which} file ({err.reason})') from None
        if self.bands is not None:
            if max(self.bands) >= img.shape[2]:
                raise PeraDataError(
                    f'{pair}: the {which} image has {img.shape[2]} bands, but bands='
                    f'{self.bands} needs at least {max(self.bands) + 1}'
                )
            img = img[..., self.bands]
        if self.num_bands is not None and img.shape[2] != self.num_bands:
            raise PeraDataError(
                f'{pair}: the {which} image has {img.shape[2]} bands, expected '
                f'num_bands={self.num_bands}'
            )
        return np.ascontiguousarray(img, dtype=np.float32 if self.to_float32 else None)

    def transform(self, results: dict) -> dict:
        """Read both images and check bands, sizes and georeferencing."""
        mr_path, hr_path = str(results['img_path']), str(results['hr_img_path'])
        pair = pair_name(mr_path, hr_path)
        scale = self.scale if self.scale is not None else results.get('scale')
        if scale is None:
            raise PeraConfigError(
                f'{type(self).__name__}: no scale: set it on the dataset or the transform'
            )
        scale = check_scale(scale, type(self).__name__)
        mr, hr = self._read(mr_path, 'MR', pair), self._read(hr_path, 'HR', pair)
        if mr.shape[2] != hr.shape[2]:
            raise PeraDataError(
                f'{pair}: the MR image has {mr.shape[2]} bands, the HR image {hr.shape[2]}'
            )
        expected = (mr.shape[0] * scale, mr.shape[1] * scale)
        if hr.shape[:2] != expected:
            raise PeraDataError(
                f'{pair}: the HR image is {hr.shape[0]}x{hr.shape[1]} but scale {scale} x the MR '
                f'size {mr.shape[0]}x{mr.shape[1]} is {expected[0]}x{expected[1]}'
            )
        if self.check_georef:
            check_georef(mr_path, hr_path, scale)
        results.update(
            img=mr,
            hr_img=hr,
            scale=scale,
            img_shape=mr.shape[:2],
            ori_shape=mr.shape[:2],
            hr_img_shape=hr.shape[:2],
        )
        return results

    def __repr__(self) -> str:
        return (
            f'{type(self).__name__}(num_bands={self.num_bands}, bands={self.bands}, '
            f'scale={self.scale}, check_georef={self.check_georef}, to_float32={self.to_float32})'
        )
