# Copyright (c) pera-mm contributors. All rights reserved.
"""MADOS (Marine Debris and Oil Spill, Sentinel-2) for MMSeg, from its release layout.

The Zenodo release (record 10664073) unpacks to::

    MADOS/Scene_<N>/10/Scene_<N>_L2R_rhorc_<nm>_<crop>.tif   10 m bands, 240 x 240, float
    MADOS/Scene_<N>/10/Scene_<N>_L2R_cl_<crop>.tif           classes: 0 = unlabelled, 1..15
    MADOS/Scene_<N>/{20,60}/...                              the coarser bands (unused here)
    MADOS/splits/{train,val,test}_X.txt                      one 'Scene_<N>_<crop>' per line

Bands are named by their central wavelength, which Sentinel-2A and 2B give differently
for B3 (560 and 559 nm); B2 = 492, B4 = 665, B8 = 833 nm for both. Pixels that are NaN
in any band are ignored (label 255) and filled with ``nan_fill``; labels 1..15 become
0..14 and 0 (unlabelled) becomes 255.
"""

import os.path as osp
from typing import List, Sequence, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: The 15 MADOS classes, in label order (file value = index + 1).
MADOS_CLASSES = (
    'Marine Debris', 'Dense Sargassum', 'Sparse Floating Algae', 'Natural Organic Material',
    'Ship', 'Oil Spill', 'Marine Water', 'Sediment-Laden Water', 'Foam', 'Turbid Water',
    'Shallow Water', 'Waves & Wakes', 'Oil Platform', 'Jellyfish', 'Sea snot',
)  # fmt: skip

#: The 10 m bands: short name -> the wavelength names its files may carry (2A, 2B).
MADOS_BANDS = {'B2': ('492',), 'B3': ('560', '559'), 'B4': ('665',), 'B8': ('833',)}
MADOS_SPLITS = ('train', 'val', 'test')
MADOS_SIZE = 240
IGNORE_INDEX = 255


def mados_band_files(root: str, scene: str, crop: str, bands: Sequence[str]) -> List[str]:
    """The 10 m band files of crop ``<scene>_<crop>``, in ``bands`` order.

    Raises:
        PeraFileNotFoundError: a band has no file under any of its wavelength names.
    """
    folder = osp.join(root, scene, '10')
    paths = []
    for band in bands:
        names = [f'{scene}_L2R_rhorc_{nm}_{crop}.tif' for nm in MADOS_BANDS[band]]
        found = [osp.join(folder, n) for n in names if osp.isfile(osp.join(folder, n))]
        if not found:
            raise PeraFileNotFoundError(
                f'{osp.join(folder, names[0])}: MADOS band {band} not found '
                f'(nor {", ".join(names[1:]) or "another wavelength name"})'
            )
        paths.append(found[0])
    return paths


def _read_band(path: str, size: int) -> np.ndarray:
    import rasterio

    try:
        with rasterio.open(path) as src:
            if src.count != 1:
                raise PeraDataError(f'{path} has {src.count} bands, expected 1')
            array = src.read(1)
    except (rasterio.errors.RasterioError, OSError) as err:
        raise PeraDataError(f'{path}: cannot be read as a GeoTIFF ({err})') from None
    if array.shape != (size, size):
        raise PeraDataError(f'{path} is {array.shape[0]}x{array.shape[1]}, expected {size}x{size}')
    return array


def read_mados_crop(
    band_paths: Sequence[str],
    label_path: str,
    size: int = MADOS_SIZE,
    nan_fill: Union[float, Sequence[float]] = 0.0,
):
    """The ``(H, W, C)`` float32 image and the ``(H, W)`` uint8 label (0..14, 255) of a crop.

    Raises:
        PeraDataError: a file of the wrong size, an unreadable file, or a label value
            outside 0..15.
    """
    img = np.stack([_read_band(p, size) for p in band_paths], axis=-1).astype(np.float32)
    raw = _read_band(label_path, size)
    if raw.min() < 0 or raw.max() > len(MADOS_CLASSES):
        raise PeraDataError(
            f'{label_path} has values {raw.min()}..{raw.max()}, expected 0 (unlabelled) '
            f'and 1..{len(MADOS_CLASSES)}'
        )
    raw = raw.astype(np.int64)
    label = np.where(raw == 0, IGNORE_INDEX, raw - 1).astype(np.uint8)
    nan = np.isnan(img)
    label[nan.any(axis=-1)] = IGNORE_INDEX
    fill = np.broadcast_to(np.asarray(nan_fill, dtype=np.float32), (img.shape[-1],))
    img = np.where(nan, fill, img)
    return img, label


@DATASETS.register_module()
class MADOSDataset(BaseSegDataset):
    """MADOS crops of one split, for MMSeg (the loader is :class:`LoadMADOSSample`).

    Args:
        split (str): ``'train'``, ``'val'`` or ``'test'`` (``splits/<split>_X.txt``).
        bands (Sequence[str]): 10 m bands among B2, B3, B4, B8, in order.
        **kwargs: :class:`BaseSegDataset` arguments (``data_root`` = the MADOS folder).
    """

    METAINFO = dict(classes=MADOS_CLASSES)

    def __init__(
        self, split: str = 'train', bands: Sequence[str] = ('B2', 'B3', 'B4', 'B8'), **kwargs
    ) -> None:
        if split not in MADOS_SPLITS:
            raise PeraConfigError(f'split {split!r}: expected one of {MADOS_SPLITS}')
        if isinstance(bands, str) or not bands or any(b not in MADOS_BANDS for b in bands):
            raise PeraConfigError(
                f'bands {bands!r}: expected a list of MADOS 10 m bands {list(MADOS_BANDS)}'
            )
        self.split, self.bands = split, tuple(bands)
        kwargs.setdefault('ignore_index', IGNORE_INDEX)
        # build dict transforms with MMSeg's registry, so no default scope is needed
        kwargs['pipeline'] = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in kwargs.get('pipeline', [])
        ]
        super().__init__(img_suffix='.tif', seg_map_suffix='.tif', **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per crop listed in ``splits/<split>_X.txt``."""
        root = self.data_root or ''
        split_file = osp.join(root, 'splits', f'{self.split}_X.txt')
        if not osp.isfile(split_file):
            raise PeraFileNotFoundError(f'{split_file}: MADOS split file not found')
        data_list = []
        with open(split_file, encoding='utf-8') as handle:
            names = [line.strip() for line in handle if line.strip()]
        for name in names:
            scene, sep, crop = name.rpartition('_')
            if not sep or not scene.startswith('Scene_'):
                raise PeraDataError(f'{split_file}: {name!r} is not Scene_<N>_<crop>')
            band_paths = mados_band_files(root, scene, crop, self.bands)
            label = osp.join(root, scene, '10', f'{scene}_L2R_cl_{crop}.tif')
            if not osp.isfile(label):
                raise PeraFileNotFoundError(f'{label}: MADOS label of {name} not found')
            data_list.append(
                dict(
                    img_path=band_paths[0],
                    band_paths=band_paths,
                    seg_map_path=label,
                    mados_name=name,
                    label_map=self.label_map,
                    reduce_zero_label=False,  # the loader maps 0 -> 255 and k -> k - 1
                    seg_fields=[],
                )
            )
        if not data_list:
            raise PeraDataError(f'{split_file} lists no crop')
        return data_list


@TRANSFORMS.register_module()
class LoadMADOSSample(BaseTransform):
    """Read a MADOS crop: ``img`` (240, 240, C) float32 reflectance, ``gt_seg_map`` uint8.

    NaN pixels (any band) get label 255 and the value ``nan_fill`` (one value, or one
    per band; 0.0 by default, set it to the band means to fill with the mean).

    Required Keys: ``band_paths``, ``seg_map_path``.
    Added Keys: ``img``, ``gt_seg_map``, ``img_shape``, ``ori_shape``, ``seg_fields``.
    """

    def __init__(self, nan_fill: Union[float, Sequence[float]] = 0.0, size: int = MADOS_SIZE):
        self.nan_fill = nan_fill
        self.size = size

    def transform(self, results: dict) -> dict:
        paths = results['band_paths']
        fill = np.asarray(self.nan_fill, dtype=np.float32)
        if fill.ndim > 1 or (fill.ndim == 1 and fill.size != len(paths)):
            raise PeraConfigError(
                f'LoadMADOSSample: nan_fill has {fill.size} values for {len(paths)} bands'
            )
        img, label = read_mados_crop(paths, results['seg_map_path'], self.size, fill)
        results['img'] = img
        results['gt_seg_map'] = label
        results.setdefault('seg_fields', []).append('gt_seg_map')
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(nan_fill={self.nan_fill}, size={self.size})'
