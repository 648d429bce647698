# Copyright (c) pera-mm contributors. All rights reserved.
"""Loading of bi-temporal image pairs and their change labels (no GDAL)."""

import os.path as osp
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image

from ...utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: Suffixes read through rasterio when it is installed (cv2 otherwise).
GEOTIFF_SUFFIXES = ('.tif', '.tiff')


def _read_geotiff(path: str) -> np.ndarray:
    """(H, W, C) array of a GeoTIFF: rasterio when installed, cv2 (any depth) otherwise."""
    try:
        import rasterio
    except ImportError:
        rasterio = None
    if rasterio is not None:
        try:
            with rasterio.open(path) as src:
                return np.moveaxis(src.read(), 0, -1)
        except (rasterio.errors.RasterioError, OSError) as err:
            raise PeraDataError(f'cannot read the image {path} (rasterio: {err})') from err
    array = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if array is None:
        raise PeraDataError(f'cannot read the image {path} (cv2 could not decode it)')
    if array.ndim == 3 and array.shape[2] in (3, 4):  # cv2 gives BGR(A); keep band order RGB
        array = array[..., [2, 1, 0] + ([3] if array.shape[2] == 4 else [])]
    return array if array.ndim == 3 else array[..., None]


def read_raster(path: str, num_bands: Optional[int] = 3) -> np.ndarray:
    """Read one date as an (H, W, C) array, bands in file order (RGB for PNG/JPEG/BMP).

    PNG, JPEG and BMP go through PIL; an alpha channel or a palette is dropped by the
    conversion to RGB when ``num_bands == 3``. GeoTIFFs go through rasterio when it is
    installed and cv2 otherwise, and keep their dtype.

    Args:
        path (str): the image file.
        num_bands (int, optional): bands to keep (the first ``num_bands``); None keeps all.

    Returns:
        np.ndarray: (H, W, C) array.
    """
    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'image file not found: {path}')
    if path.lower().endswith(GEOTIFF_SUFFIXES):
        array = _read_geotiff(path)
    else:
        try:
            with Image.open(path) as img:
                if num_bands == 3 and img.mode != 'RGB':
                    img = img.convert('RGB')
                array = np.asarray(img)
        except (OSError, ValueError) as err:
            raise PeraDataError(f'cannot read the image {path}: {err}') from None
        if array.ndim == 2:
            array = array[..., None]
    if num_bands is not None:
        if array.shape[2] < num_bands:
            raise PeraDataError(f'{path} has {array.shape[2]} bands, expected at least {num_bands}')
        array = array[..., :num_bands]
    return np.ascontiguousarray(array)


def read_change_label(path: str, changed_value: int = 255) -> np.ndarray:
    """Read a change mask whose values are 0 (unchanged) and ``changed_value`` as 0/1 uint8.

    A 3-channel mask is accepted when its channels are equal. Any other value, or unequal
    channels, is a one-line :class:`PeraDataError` naming the file (MMSeg would read 255 as
    its ignore index and train on nothing but the background).

    Args:
        path (str): the label file.
        changed_value (int): the value of changed pixels (255 in LEVIR-CD, DSIFN-CD,
            SZTAKI; 1 for masks already in 0/1).

    Returns:
        np.ndarray: (H, W) uint8 map, 1 = changed.
    """
    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'label file not found: {path}')
    if path.lower().endswith(GEOTIFF_SUFFIXES):
        label = _read_geotiff(path)
    else:
        try:
            with Image.open(path) as img:
                label = np.asarray(img.convert('RGB') if img.mode in ('P', 'RGBA') else img)
        except (OSError, ValueError) as err:
            raise PeraDataError(f'cannot read the label {path}: {err}') from None
    if label.ndim == 3:
        if label.shape[2] == 1 or (label == label[..., :1]).all():
            label = label[..., 0]
        else:
            raise PeraDataError(
                f'label {path} has {label.shape[2]} channels that differ; expected a '
                f'single-channel 0/{changed_value} mask'
            )
    values = np.unique(label)
    bad = values[(values != 0) & (values != changed_value)]
    if bad.size:
        raise PeraDataError(
            f'label {path} has values {bad[:5].tolist()}{" ..." if bad.size > 5 else ""}; '
            f'expected only 0 (unchanged) and {changed_value} (changed)'
        )
    return (label == changed_value).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadBitemporalImagesFromFile(BaseTransform):
    """Load the two dates of a pair and stack them into one (H, W, 2C) ``img``.

    Date A's C bands come first, then date B's, the layout
    :class:`BitemporalDataPreProcessor` and :class:`SiameseEncoderDecoder` expect. Since
    both dates live in one array, every later geometric transform (ours or MMSeg's
    flips, crops and resizes) moves both dates by exactly the same pixels. Bands stay in
    file order (RGB for PNG/JPEG/BMP, unlike MMSeg's BGR ``LoadImageFromFile``), so the
    preprocessor needs no ``bgr_to_rgb``. Two dates of different sizes are a one-line
    :class:`PeraDataError` naming the pair.

    Required Keys: ``img_path`` (date A), ``img_path_b`` (date B).

    Added Keys: ``img`` (H, W, 2C), ``img_shape``, ``ori_shape``, ``num_bands``.

    Args:
        num_bands (int, optional): bands per date (3; None keeps all, e.g. multispectral
            GeoTIFFs).
        to_float32 (bool): cast to float32 (otherwise the file's dtype, usually uint8).
    """

    def __init__(self, num_bands: Optional[int] = 3, to_float32: bool = False) -> None:
        if num_bands is not None and (not isinstance(num_bands, int) or num_bands < 1):
            raise PeraConfigError(
                f'LoadBitemporalImagesFromFile: num_bands must be a positive int or None, '
                f'got {num_bands!r}'
            )
        self.num_bands = num_bands
        self.to_float32 = to_float32

    def transform(self, results: dict) -> dict:
        """Read both dates, check their sizes agree, and stack them."""
        path_a, path_b = results['img_path'], results['img_path_b']
        img_a = read_raster(path_a, self.num_bands)
        img_b = read_raster(path_b, self.num_bands)
        if img_a.shape != img_b.shape:
            raise PeraDataError(
                f'the pair {path_a} / {path_b} has sizes (H, W, C) {img_a.shape} and '
                f'{img_b.shape}; both dates must have the same size'
            )
        img = np.concatenate([img_a, img_b], axis=2)
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        results['num_bands'] = img_a.shape[2]
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_bands={self.num_bands}, to_float32={self.to_float32})'
        )


@TRANSFORMS.register_module()
class LoadChangeLabelFromFile(BaseTransform):
    """Load a 0/255 change mask as a 0/1 ``gt_seg_map`` (1 = changed), checked.

    Values other than 0 and ``changed_value`` are a one-line :class:`PeraDataError`
    naming the file; a label whose size is not the pair's (``ori_shape``, when the
    images are loaded first) is one naming the label and the pair.

    Required Keys: ``seg_map_path``; ``img_path`` / ``img_path_b`` / ``ori_shape``
    (optional, for the size check).

    Added Keys: ``gt_seg_map`` (H, W) uint8, ``seg_fields``.

    Args:
        changed_value (int): the value of changed pixels in the files (255; 1 for 0/1 masks).
    """

    def __init__(self, changed_value: int = 255) -> None:
        if not isinstance(changed_value, int) or not 0 < changed_value <= 65535:
            raise PeraConfigError(
                f'LoadChangeLabelFromFile: changed_value must be an int in [1, 65535], got '
                f'{changed_value!r}'
            )
        self.changed_value = changed_value

    def transform(self, results: dict) -> dict:
        """Read, check and convert the label."""
        path = results['seg_map_path']
        label = read_change_label(path, self.changed_value)
        shape: Optional[Tuple[int, int]] = results.get('ori_shape')
        if shape is not None and tuple(label.shape) != tuple(shape[:2]):
            raise PeraDataError(
                f'label {path} is {label.shape[0]}x{label.shape[1]} (HxW) but the pair '
                f'{results.get("img_path")} / {results.get("img_path_b")} is '
                f'{shape[0]}x{shape[1]}'
            )
        results['gt_seg_map'] = label
        results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in results['seg_fields']:
            results['seg_fields'].append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(changed_value={self.changed_value})'


def split_dates(img: np.ndarray, num_bands: Optional[int] = None) -> Sequence[np.ndarray]:
    """The two dates of a stacked (H, W, 2C) image (views, no copy)."""
    c = img.shape[2] // 2 if num_bands is None else num_bands
    if img.ndim != 3 or img.shape[2] != 2 * c:
        raise PeraDataError(f'expected a stacked (H, W, 2 * {c}) pair, got shape {img.shape}')
    return img[..., :c], img[..., c:]
