# Copyright (c) pera-mm contributors. All rights reserved.
"""GEO-Bench and MADOS samples written FROM REAL OSCD PIXELS, for the reader tests.

No GEO-Bench or MADOS file is available here. The two OSCD Sentinel-2 cities (13 bands
as separate GeoTIFFs, uint16 L1C reflectance x 10000) give the pixels; the OSCD change
maps (``<city>-cm.tif``, values 1 = no change, 2 = change) give the labels. The bands
coarser than 10 m are brought onto the 10 m grid by nearest-neighbour index mapping, so
every written value is a real pixel value. The classes are therefore not the
benchmarks' classes: the fixtures exercise the file layouts, not the tasks.
"""

import json
import warnings
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

OSCD_IMAGES = 'OSCD/Onera Satellite Change Detection dataset - Images'
OSCD_LABELS = 'OSCD/Onera Satellite Change Detection dataset - Train Labels'
#: OSCD band-file suffixes in GEO-Bench order (B1 ... B12 with B8A after B8).
OSCD_BANDS = (
    'B01', 'B02', 'B03', 'B04', 'B05', 'B06', 'B07', 'B08', 'B8A', 'B09', 'B10', 'B11', 'B12',
)  # fmt: skip
#: OSCD suffix -> the wavelength name MADOS files use (Sentinel-2A; 2B names B3 559).
MADOS_WAVELENGTHS_S2A = {'B02': '492', 'B03': '560', 'B04': '665', 'B08': '833'}
MADOS_WAVELENGTHS_S2B = {'B02': '492', 'B03': '559', 'B04': '665', 'B08': '833'}


def oscd_city(shared_root, city: str) -> Dict[str, np.ndarray]:
    """The 13 bands of ``city`` (first date) on the 10 m grid, and its change map.

    Returns:
        dict: OSCD band suffix -> (H, W) uint16, plus ``'label'`` -> (H, W) uint8 {1, 2}.
    """
    import rasterio

    folder = Path(shared_root, OSCD_IMAGES, city, 'imgs_1')
    out = {}
    for suffix in OSCD_BANDS:
        (path,) = folder.glob(f'*_{suffix}.tif')
        with rasterio.open(path) as src:
            out[suffix] = src.read(1)
    height, width = out['B02'].shape
    for suffix, band in out.items():
        if band.shape != (height, width):  # nearest: output pixel i takes i * h / H
            rows = np.arange(height) * band.shape[0] // height
            cols = np.arange(width) * band.shape[1] // width
            out[suffix] = band[rows][:, cols]
    with warnings.catch_warnings():  # the OSCD change maps carry no geotransform
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(Path(shared_root, OSCD_LABELS, city, 'cm', f'{city}-cm.tif')) as src:
            out['label'] = src.read(1).astype(np.uint8)
    return out


def _stats(values: np.ndarray) -> dict:
    q = np.percentile(values, [0.1, 1, 5, 50, 95, 99, 99.9])
    return dict(
        min=float(values.min()), max=float(values.max()), mean=float(values.mean()),
        std=float(values.std()), median=float(q[3]), percentile_0_1=float(q[0]),
        percentile_1=float(q[1]), percentile_5=float(q[2]), percentile_95=float(q[4]),
        percentile_99=float(q[5]), percentile_99_9=float(q[6]),
    )  # fmt: skip


def write_geobench_task(
    task_dir,
    cities: Dict[str, Dict[str, np.ndarray]],
    crops: Sequence[Tuple[str, str, int, int, str]],
    size: int = 256,
    date: str = None,
) -> Dict[str, dict]:
    """Write a GEO-Bench task folder: one HDF5 per crop, the partition and band stats.

    Args:
        task_dir: the folder to write.
        cities: :func:`oscd_city` output per city name.
        crops: ``(sample name, city, y0, x0, split)`` per sample; split in
            ``train``/``valid``/``test``.
        size: the crop side (256 for the two segmentation tasks).
        date: when set, bands are written dated (``'02 - Blue_<date>'``).

    Returns:
        dict: sample name -> ``dict(bands={GEO-Bench name: array}, label=array)`` as written.
    """
    import h5py

    from ..datasets.geobench_seg_dataset import GEOBENCH_S2_BANDS

    task_dir = Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    names = list(GEOBENCH_S2_BANDS.values())  # the 13 bands, B1 ... B12
    written, partition = {}, dict(train=[], valid=[], test=[])
    for sample, city, y0, x0, split in crops:
        data = cities[city]
        window = (slice(y0, y0 + size), slice(x0, x0 + size))
        bands = {name: data[s][window] for name, s in zip(names, OSCD_BANDS)}
        label = data['label'][window]
        with h5py.File(task_dir / f'{sample}.hdf5', 'w') as handle:
            for name, array in bands.items():
                key = name if date is None else f'{name}_{date}'
                handle.create_dataset(key, data=array.astype(np.int16))
            handle.create_dataset('label', data=label)
        written[sample] = dict(bands=bands, label=label)
        partition[split].append(sample)
    (task_dir / 'default_partition.json').write_text(json.dumps(partition, indent=2))
    train = partition['train'] or list(written)
    stats = {
        name: _stats(
            np.concatenate([written[s]['bands'][name].ravel() for s in train]).astype(float)
        )
        for name in names
    }
    (task_dir / 'band_stats.json').write_text(json.dumps(stats, indent=2))
    return written


def write_mados_root(
    root,
    cities: Dict[str, Dict[str, np.ndarray]],
    crops: Sequence[Tuple[int, str, str, int, int, str]],
    size: int = 240,
    nan_block: Tuple[slice, slice] = (slice(0, 8), slice(0, 16)),
    unlabelled_rows: int = 40,
) -> Dict[str, dict]:
    """Write a MADOS folder: per crop the four 10 m band GeoTIFFs, the class map, splits.

    Band values are the OSCD DN / 10000 as float32 (reflectance, as MADOS stores it);
    ``nan_block`` of B3 of every crop is set to NaN; the last ``unlabelled_rows`` rows of
    the class map are 0 (unlabelled); elsewhere classes are the change map's 1 / 2.

    Args:
        crops: ``(scene number, crop id, city, y0, x0, split)``; odd scenes use the
            Sentinel-2B names (B3 = 559 nm), even ones Sentinel-2A (560 nm).

    Returns:
        dict: ``'Scene_<N>_<crop>'`` -> ``dict(img=(H, W, 4) float32 as written with NaNs,
        cl=(H, W) uint8 as written)``, bands in B2, B3, B4, B8 order.
    """
    root = Path(root)
    splits: Dict[str, List[str]] = dict(train=[], val=[], test=[])
    written = {}
    for number, crop, city, y0, x0, split in crops:
        scene = f'Scene_{number}'
        folder = root / scene / '10'
        folder.mkdir(parents=True, exist_ok=True)
        names = MADOS_WAVELENGTHS_S2B if number % 2 else MADOS_WAVELENGTHS_S2A
        data = cities[city]
        window = (slice(y0, y0 + size), slice(x0, x0 + size))
        img = np.stack(
            [data[s][window].astype(np.float32) / 10000 for s in ('B02', 'B03', 'B04', 'B08')],
            axis=-1,
        )
        img[nan_block[0], nan_block[1], 1] = np.nan
        cl = data['label'][window].copy()
        cl[size - unlabelled_rows :] = 0
        for i, suffix in enumerate(('B02', 'B03', 'B04', 'B08')):
            _write_tif(folder / f'{scene}_L2R_rhorc_{names[suffix]}_{crop}.tif', img[..., i])
        _write_tif(folder / f'{scene}_L2R_cl_{crop}.tif', cl)
        splits[split].append(f'{scene}_{crop}')
        written[f'{scene}_{crop}'] = dict(img=img, cl=cl)
    (root / 'splits').mkdir(parents=True, exist_ok=True)
    for split, names in splits.items():
        (root / 'splits' / f'{split}_X.txt').write_text(''.join(n + '\n' for n in names))
    return written


def _write_tif(path: Path, array: np.ndarray) -> None:
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(
        path, 'w', driver='GTiff', height=array.shape[0], width=array.shape[1], count=1,
        dtype=array.dtype, crs='EPSG:32631', transform=Affine(10, 0, 440000, 0, -10, 5410000),
    ) as dst:  # a 10 m UTM grid, as MADOS crops have one  # fmt: skip
        dst.write(array, 1)
