# Copyright (c) pera-mm contributors. All rights reserved.
"""GEO-Bench segmentation tasks (m-cashew-plant, m-SA-crop-type) read with h5py alone.

GEO-Bench's layout (``geobench`` package, ``segmentation_v1.0/<task>/``)::

    <task>/<sample>.hdf5           one file per sample: one 2-D dataset per band, named
                                   '<NN> - <name>' ('02 - Blue', '08 - NIR', ...) with a
                                   '_<YYYY-MM-DD>' suffix where the band is dated, and
                                   a 'label' dataset (class per pixel)
    <task>/<partition>_partition.json   {"train": [...], "valid": [...], "test": [...]}
    <task>/band_stats.json         {"02 - Blue": {"mean": ..., "std": ..., ...}, ...}

Only the band datasets and ``label`` are read: the pickled ``attrs['pickle']`` metadata
is never unpickled. Bands are picked by short name (``B2``) or GEO-Bench name.
"""

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS, TRANSFORMS

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: Sentinel-2 short band name -> GEO-Bench band name (``geobench.dataset.sentinel2_13_bands``).
GEOBENCH_S2_BANDS = {
    'B1': '01 - Coastal aerosol',
    'B2': '02 - Blue',
    'B3': '03 - Green',
    'B4': '04 - Red',
    'B5': '05 - Vegetation Red Edge',
    'B6': '06 - Vegetation Red Edge',
    'B7': '07 - Vegetation Red Edge',
    'B8': '08 - NIR',
    'B8A': '08A - Vegetation Red Edge',
    'B9': '09 - Water vapour',
    'B10': '10 - SWIR - Cirrus',
    'B11': '11 - SWIR',
    'B12': '12 - SWIR',
}

#: The two segmentation tasks of the paper: class names (label value = index), side.
GEOBENCH_TASKS = {
    'm-cashew-plant': dict(
        classes=(
            'no data', 'well-managed plantation', 'poorly-managed plantation',
            'non-plantation', 'residential', 'background', 'uncertain',
        ),
        img_size=256,
    ),
    'm-SA-crop-type': dict(
        classes=(
            'No Data', 'Lucerne/Medics', 'Planted pastures (perennial)', 'Fallow',
            'Wine grapes', 'Weeds', 'Small grain grazing', 'Wheat', 'Canola', 'Rooibos',
        ),
        img_size=256,
    ),
}  # fmt: skip

#: GEO-Bench's split names; ``val`` is accepted for ``valid``.
GEOBENCH_SPLITS = ('train', 'valid', 'test')


def geobench_band_name(band: str) -> str:
    """The GEO-Bench name of ``band``: ``'B2'``, ``'B02'`` or ``'02 - Blue'`` itself.

    Raises:
        PeraConfigError: not a Sentinel-2 band.
    """
    if band in GEOBENCH_S2_BANDS.values():
        return band
    short = str(band).upper()
    if short.startswith('B') and short[1:].lstrip('0'):
        short = 'B' + short[1:].lstrip('0')
    if short not in GEOBENCH_S2_BANDS:
        raise PeraConfigError(
            f'band {band!r}: expected a Sentinel-2 band ({", ".join(GEOBENCH_S2_BANDS)}) '
            'or its GEO-Bench name (e.g. "02 - Blue")'
        )
    return GEOBENCH_S2_BANDS[short]


def band_dataset_key(keys: Sequence[str], name: str, path: str, date: Optional[str] = None) -> str:
    """The HDF5 dataset of band ``name`` among ``keys``: ``name`` or ``name_<date>``.

    Raises:
        PeraDataError: no such band (or not at ``date``), or several dates and no ``date``.
    """
    found = [k for k in keys if k == name or k.startswith(name + '_')]
    if date is not None:
        found = [k for k in found if k == f'{name}_{date}']
    if not found:
        bands = sorted(k for k in keys if k != 'label')
        at = f' dated {date}' if date is not None else ''
        raise PeraDataError(f'{path}: no band {name!r}{at} (its bands: {bands})')
    if len(found) > 1:
        raise PeraDataError(
            f'{path}: band {name!r} has {len(found)} dates ({sorted(found)}); set date='
        )
    return found[0]


def read_geobench_sample(
    path: str, bands: Sequence[str], date: Optional[str] = None, img_size: Optional[int] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``(H, W, len(bands))`` float32 image and the ``(H, W)`` label of one sample file.

    Args:
        path (str): the ``.hdf5`` file.
        bands (Sequence[str]): GEO-Bench band names, in the output order.
        date (str, optional): the ``YYYY-MM-DD`` of dated bands (needed when a band has
            several dates in the file).
        img_size (int, optional): the side every band and the label must have.

    Raises:
        PeraFileNotFoundError: the file does not exist.
        PeraDataError: not an HDF5 file, a band or the label missing, or a wrong size.
    """
    import h5py

    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'{path}: GEO-Bench sample file not found')
    try:
        handle = h5py.File(path, 'r')
    except OSError as err:
        raise PeraDataError(f'{path}: not a readable HDF5 file ({err})') from None
    with handle:
        keys = list(handle.keys())
        arrays = []
        for name in bands:
            key = band_dataset_key(keys, name, path, date)
            arrays.append(_checked(handle[key][()], f'{path}:{key}', img_size))
        if 'label' not in handle:
            raise PeraDataError(f'{path}: no "label" dataset')
        label = _checked(handle['label'][()], f'{path}:label', img_size)
    shapes = {a.shape for a in arrays + [label]}
    if len(shapes) != 1:
        raise PeraDataError(f'{path}: bands and label differ in size ({sorted(shapes)})')
    return np.stack(arrays, axis=-1).astype(np.float32), label


def _checked(array: np.ndarray, where: str, img_size: Optional[int]) -> np.ndarray:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise PeraDataError(f'{where}: expected a 2-D band, got shape {array.shape}')
    if img_size is not None and array.shape != (img_size, img_size):
        raise PeraDataError(
            f'{where} is {array.shape[0]}x{array.shape[1]}, expected {img_size}x{img_size}'
        )
    return array


def geobench_band_stats(task_dir: str, bands: Sequence[str]) -> Dict[str, List[float]]:
    """``dict(mean=[...], std=[...])`` of ``bands`` from ``<task_dir>/band_stats.json``.

    Raises:
        PeraFileNotFoundError: no ``band_stats.json``.
        PeraDataError: a band is not in it.
    """
    path = osp.join(task_dir, 'band_stats.json')
    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'{path}: GEO-Bench band statistics not found')
    with open(path, encoding='utf-8') as handle:
        stats = json.load(handle)
    out = dict(mean=[], std=[])
    for band in bands:
        name = geobench_band_name(band)
        if name not in stats:
            raise PeraDataError(f'{path}: no statistics for band {name!r}')
        out['mean'].append(float(stats[name]['mean']))
        out['std'].append(float(stats[name]['std']))
    return out


@DATASETS.register_module()
class GeoBenchSegDataset(BaseSegDataset):
    """A GEO-Bench segmentation task (one HDF5 file per sample), for MMSeg.

    ``data_root`` is the task folder (``.../segmentation_v1.0/m-cashew-plant``). The
    samples of ``split`` come from ``<partition>_partition.json``; each is read by
    :class:`LoadGeoBenchSample` (first in the pipeline) as an ``(H, W, C)`` float32
    image of ``bands`` (values as stored) and its label. Labels are the task's class
    indices; GEO-Bench's class 0 ("no data") is a class of both tasks and is kept.

    Args:
        task (str): ``'m-cashew-plant'`` or ``'m-SA-crop-type'`` (class names, size).
        split (str): ``'train'``, ``'valid'`` (or ``'val'``) or ``'test'``.
        partition (str): the partition file's prefix. Defaults to ``'default'``.
        bands (Sequence[str]): the bands, in order. Defaults to B2, B3, B4, B8.
        date (str, optional): the date of dated bands when a file holds several.
        **kwargs: :class:`BaseSegDataset` arguments (``data_root``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=None)

    def __init__(
        self,
        task: str = 'm-cashew-plant',
        split: str = 'train',
        partition: str = 'default',
        bands: Sequence[str] = ('B2', 'B3', 'B4', 'B8'),
        date: Optional[str] = None,
        **kwargs,
    ) -> None:
        if task not in GEOBENCH_TASKS:
            raise PeraConfigError(f'task {task!r}: expected one of {sorted(GEOBENCH_TASKS)}')
        split = 'valid' if split == 'val' else split
        if split not in GEOBENCH_SPLITS:
            raise PeraConfigError(f'split {split!r}: expected train, valid (val) or test')
        if isinstance(bands, str) or not bands:
            raise PeraConfigError(f'bands must be a list of band names, got {bands!r}')
        self.task, self.split, self.partition, self.date = task, split, partition, date
        self.band_names = [geobench_band_name(b) for b in bands]
        self.img_size = GEOBENCH_TASKS[task]['img_size']
        metainfo = dict(
            classes=GEOBENCH_TASKS[task]['classes'], **(kwargs.pop('metainfo', None) or {})
        )
        # build dict transforms with MMSeg's registry, so no default scope is needed
        kwargs['pipeline'] = [
            TRANSFORMS.build(t) if isinstance(t, dict) else t for t in kwargs.get('pipeline', [])
        ]
        super().__init__(metainfo=metainfo, img_suffix='.hdf5', seg_map_suffix='.hdf5', **kwargs)

    def load_data_list(self) -> List[dict]:
        """One ``dict(img_path=..., seg_map_path=...)`` per sample of the split."""
        root = self.data_root or ''
        path = osp.join(root, f'{self.partition}_partition.json')
        if not osp.isfile(path):
            raise PeraFileNotFoundError(f'{path}: GEO-Bench partition file not found')
        with open(path, encoding='utf-8') as handle:
            splits = json.load(handle)
        if self.split not in splits:
            raise PeraDataError(f'{path}: no split {self.split!r} (it has {sorted(splits)})')
        data_list = []
        for name in splits[self.split]:
            sample = osp.join(root, f'{name}.hdf5')
            if not osp.isfile(sample):
                raise PeraFileNotFoundError(f'{sample}: listed in {path} but not found')
            data_list.append(
                dict(
                    img_path=sample,
                    seg_map_path=sample,
                    geobench_bands=list(self.band_names),
                    geobench_date=self.date,
                    img_size=self.img_size,
                    label_map=self.label_map,
                    reduce_zero_label=self.reduce_zero_label,
                    seg_fields=[],
                )
            )
        if not data_list:
            raise PeraDataError(f'{path}: split {self.split!r} lists no sample')
        return data_list

    def band_stats(self) -> Dict[str, List[float]]:
        """The mean and std of the selected bands, from the task's ``band_stats.json``."""
        return geobench_band_stats(self.data_root or '', self.band_names)


@TRANSFORMS.register_module()
class LoadGeoBenchSample(BaseTransform):
    """Read a GEO-Bench sample: ``img`` (H, W, C) float32 and ``gt_seg_map`` (H, W) uint8.

    The bands, date and size come from the data info of :class:`GeoBenchSegDataset`.

    Required Keys: ``img_path``, ``geobench_bands``, ``geobench_date``, ``img_size``.
    Added Keys: ``img``, ``gt_seg_map``, ``img_shape``, ``ori_shape``, ``seg_fields``.
    """

    def transform(self, results: dict) -> dict:
        img, label = read_geobench_sample(
            results['img_path'],
            results['geobench_bands'],
            results.get('geobench_date'),
            results.get('img_size'),
        )
        if label.min() < 0 or label.max() > 255:
            raise PeraDataError(
                f'{results["img_path"]}:label has values {label.min()}..{label.max()}, '
                'expected class indices 0..255'
            )
        results['img'] = img
        results['gt_seg_map'] = label.astype(np.uint8)
        results.setdefault('seg_fields', []).append('gt_seg_map')
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results
