# Copyright (c) pera-mm contributors. All rights reserved.
"""Loading of N-band rasters (GeoTIFF, .npy, PNG/JPEG, or one file per band)."""

import glob
import os.path as osp
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError, PeraDataError, PeraError
from .bitemporal_loading import GEOTIFF_SUFFIXES, read_raster
from .loading import UnreadableImageError

NPY_LAYOUTS = ('HWC', 'CHW')


def _rasterio_available() -> bool:
    try:
        import rasterio  # noqa: F401
    except ImportError:
        return False
    return True


def read_multiband(path: str, npy_layout: str = 'HWC') -> np.ndarray:
    """Every band of one raster file as an (H, W, C) array in file order, dtype kept.

    ``.npy`` arrays are (H, W, C) or (C, H, W) (``npy_layout``; 2-D = one band).
    GeoTIFFs go through rasterio when it is installed (any band count) and cv2
    otherwise (at most 4 bands); PNG/JPEG/BMP through PIL (RGB, RGBA, greyscale,
    16-bit greyscale). A missing or undecodable file is an
    :class:`UnreadableImageError` (datasets may skip it).
    """
    if not osp.isfile(path):
        raise UnreadableImageError(path, 'file not found')
    if path.lower().endswith('.npy'):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise UnreadableImageError(path, f'{type(err).__name__}: {err}') from None
        if array.ndim == 2:
            array = array[..., None]
        elif array.ndim != 3:
            raise PeraDataError(f'{path}: a .npy image must be 2-D or 3-D, got shape {array.shape}')
        elif npy_layout == 'CHW':
            array = np.moveaxis(array, 0, -1)
        return np.ascontiguousarray(array)
    try:
        return read_raster(path, num_bands=None)
    except PeraError as err:
        raise UnreadableImageError(path, str(err)) from None


@TRANSFORMS.register_module()
class LoadMultiBandImageFromFile(BaseTransform):
    """Load an N-band raster as an (H, W, C) ``img`` and check its band count.

    ``img_path`` is a raster file (GeoTIFF, ``.npy``, PNG/JPEG/BMP), or, with
    ``band_suffixes``, a folder holding one single-band file per band (the
    Sentinel-2 / OSCD layout: ``<folder>/*<suffix>.tif``), stacked in the given
    order. ``bands`` then picks and orders bands of the file (0-based). Values keep
    their radiometric scale (uint16 DN, reflectance, ...); the per-band scaling and
    normalisation of the config happen in :class:`MultiBandDataPreProcessor`.

    A file whose band count is not ``num_bands`` (after ``bands``) is a one-line
    :class:`PeraDataError` naming the file: a 3-band JPEG in a 4-band data set must
    not train as noise. Missing or undecodable files raise
    :class:`UnreadableImageError`, which :class:`UnlabeledImageDataset` skips.

    Required Keys: ``img_path``. Added Keys: ``img``, ``img_shape``, ``ori_shape``.

    Args:
        num_bands (int, optional): bands every image must have; None accepts any.
        bands (Sequence[int], optional): band indices to keep, in this order.
        band_suffixes (Sequence[str], optional): read ``img_path`` as a folder of
            single-band files ending in ``<suffix>.<ext>``, one per suffix.
        band_file_ext (str): extension of the single-band files. Defaults to '.tif'.
        npy_layout (str): 'HWC' (default) or 'CHW' for ``.npy`` files.
        to_float32 (bool): cast to float32 (otherwise the file's dtype).
    """

    def __init__(
        self,
        num_bands: Optional[int] = None,
        bands: Optional[Sequence[int]] = None,
        band_suffixes: Optional[Sequence[str]] = None,
        band_file_ext: str = '.tif',
        npy_layout: str = 'HWC',
        to_float32: bool = False,
    ):
        name = type(self).__name__
        if num_bands is not None and (
            not isinstance(num_bands, int) or isinstance(num_bands, bool) or num_bands < 1
        ):
            raise PeraConfigError(
                f'{name}: num_bands must be a positive int or None, got {num_bands!r}'
            )
        if bands is not None:
            if (
                isinstance(bands, (str, int))
                or not all(isinstance(b, int) and b >= 0 for b in bands)
                or not bands
            ):
                raise PeraConfigError(
                    f'{name}: bands must be a list of band indices >= 0, got {bands!r}'
                )
            bands = [int(b) for b in bands]
        if band_suffixes is not None and (
            isinstance(band_suffixes, str)
            or not band_suffixes
            or not all(isinstance(s, str) and s for s in band_suffixes)
        ):
            raise PeraConfigError(
                f'{name}: band_suffixes must be a list of file-name endings, got {band_suffixes!r}'
            )
        if npy_layout not in NPY_LAYOUTS:
            raise PeraConfigError(
                f'{name}: npy_layout must be one of {NPY_LAYOUTS}, got {npy_layout!r}'
            )
        if num_bands is not None and bands is not None and len(bands) != num_bands:
            raise PeraConfigError(
                f'{name}: bands lists {len(bands)} bands but num_bands is {num_bands}'
            )
        if num_bands is not None and bands is None and band_suffixes is not None:
            if len(band_suffixes) != num_bands:
                raise PeraConfigError(
                    f'{name}: band_suffixes lists {len(band_suffixes)} bands but num_bands is '
                    f'{num_bands}'
                )
        self.num_bands, self.bands, self.band_suffixes = num_bands, bands, band_suffixes
        self.band_file_ext, self.npy_layout, self.to_float32 = band_file_ext, npy_layout, to_float32

    def _band_file(self, folder: str, suffix: str) -> str:
        matches = sorted(glob.glob(osp.join(glob.escape(folder), f'*{suffix}{self.band_file_ext}')))
        if len(matches) != 1:
            raise PeraDataError(
                f'{folder}: expected exactly one file *{suffix}{self.band_file_ext} for band '
                f'{suffix!r}, found {len(matches)}'
            )
        return matches[0]

    def read(self, path: str) -> np.ndarray:
        """The (H, W, C) array of ``path`` before the band selection."""
        if self.band_suffixes is None:
            return read_multiband(path, self.npy_layout)
        if not osp.isdir(path):
            raise UnreadableImageError(path, 'not a folder of band files (band_suffixes is set)')
        arrays = []
        for suffix in self.band_suffixes:
            band_path = self._band_file(path, suffix)
            band = read_multiband(band_path, self.npy_layout)
            if band.shape[2] != 1:
                raise PeraDataError(
                    f'{band_path} has {band.shape[2]} bands, expected 1 per band file'
                )
            if arrays and band.shape[:2] != arrays[0].shape[:2]:
                raise PeraDataError(
                    f'{band_path} is {band.shape[0]}x{band.shape[1]} but the first band of {path} '
                    f'is {arrays[0].shape[0]}x{arrays[0].shape[1]}'
                )
            arrays.append(band)
        return np.concatenate(arrays, axis=2)

    def transform(self, results: dict) -> dict:
        """Read ``results['img_path']``, select and check the bands."""
        path = str(results['img_path'])
        img = self.read(path)
        if self.bands is not None:
            if max(self.bands) >= img.shape[2]:
                raise PeraDataError(
                    f'{path} has {img.shape[2]} bands, but bands={self.bands} needs at least '
                    f'{max(self.bands) + 1}'
                )
            img = img[..., self.bands]
        if self.num_bands is not None and img.shape[2] != self.num_bands:
            hint = ''
            if path.lower().endswith(GEOTIFF_SUFFIXES) and not _rasterio_available():
                hint = ' (read by cv2, which keeps at most 4 bands; install rasterio)'
            raise PeraDataError(
                f'{path} has {img.shape[2]} bands, expected num_bands={self.num_bands}{hint}'
            )
        img = np.ascontiguousarray(img, dtype=np.float32 if self.to_float32 else None)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_bands={self.num_bands}, bands={self.bands}, '
            f'band_suffixes={self.band_suffixes}, to_float32={self.to_float32})'
        )
