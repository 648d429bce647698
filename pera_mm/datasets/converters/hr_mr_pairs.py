# Copyright (c) pera-mm contributors. All rights reserved.
"""Cut co-registered HR and MR scenes into pairs (tools/dataset_converters/cut_hr_mr_pairs.py)."""

import os.path as osp
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
from tqdm import tqdm

from ...utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError
from ..transforms.load_multiband_image import read_multiband
from ..transforms.loading import UnreadableImageError
from ..transforms.paired_loading import (
    check_scale,
    hr_offset_in_hr_pixels,
    pair_name,
    raster_georef,
)

PAIR_FORMATS = ('tif', 'npy')


def _read_scene(path: str, which: str, pair: str) -> np.ndarray:
    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'{pair}: the {which} scene does not exist')
    try:
        return read_multiband(path)
    except UnreadableImageError as err:
        raise PeraDataError(f'{pair}: cannot read the {which} scene ({err.reason})') from None


def tile_windows(
    mr_hw: Tuple[int, int],
    hr_hw: Tuple[int, int],
    hr_offset: Tuple[int, int],
    scale: int,
    tile: int,
    stride: int,
) -> List[Tuple[int, int]]:
    """Top-left MR pixels (row, col) of the ``tile`` px MR tiles whose HR window fits.

    MR tile (r, c) covers MR rows r..r+tile; its HR window starts at HR pixel
    (offset_row + s * r, offset_col + s * c) and is s * tile pixels wide; tiles whose HR
    window leaves the HR scene are dropped. Tiles start every ``stride`` MR pixels.
    """
    (oy, ox), size = hr_offset, scale * tile
    rows = [
        r
        for r in range(0, mr_hw[0] - tile + 1, stride)
        if oy + scale * r >= 0 and oy + scale * r + size <= hr_hw[0]
    ]
    cols = [
        c
        for c in range(0, mr_hw[1] - tile + 1, stride)
        if ox + scale * c >= 0 and ox + scale * c + size <= hr_hw[1]
    ]
    return [(r, c) for r in rows for c in cols]


def _write(path: Path, array: np.ndarray, geo, fmt: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == 'npy':
        np.save(path, array)
        return
    import rasterio

    h, w, c = array.shape
    profile = dict(driver='GTiff', width=w, height=h, count=c, dtype=array.dtype.name)
    if geo is not None:
        profile.update(crs=geo[0], transform=geo[1])
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(np.moveaxis(array, -1, 0))


def cut_hr_mr_pairs(
    mr_path: Union[str, Path],
    hr_path: Union[str, Path],
    out_dir: Union[str, Path],
    scale: int = 2,
    tile: int = 64,
    stride: Optional[int] = None,
    fmt: str = 'tif',
    name: Optional[str] = None,
    ann_file: str = 'pairs.txt',
    progress: bool = True,
) -> List[Tuple[str, str]]:
    """Cut one co-registered MR/HR scene pair into ``tile`` px MR tiles and their HR tiles.

    MR tile ``t`` px at MR pixel (r, c) <-> HR tile ``s * t`` px at HR pixel
    (offset + s * r, offset + s * c): the same ground window. With two georeferenced
    GeoTIFFs the CRS must agree, the HR pixel times ``scale`` must be the MR pixel, and
    the MR origin must fall on the HR pixel grid (the offset); other files are taken as
    aligned at their top-left corners. Written: ``out_dir/mr/<name>_<r>_<c>.<fmt>``,
    ``out_dir/hr/<same>.<fmt>`` (GeoTIFF tiles keep the georeferencing of their window)
    and ``out_dir/<ann_file>`` with one ``mr/... hr/...`` line per pair (overwritten),
    the :class:`PairedHRMRDataset` format.

    Returns:
        list[tuple[str, str]]: the (MR, HR) paths relative to ``out_dir``.
    """
    scale = check_scale(scale, 'cut_hr_mr_pairs')
    tile = check_scale(tile, 'cut_hr_mr_pairs', 'tile')
    stride = tile if stride is None else check_scale(stride, 'cut_hr_mr_pairs', 'stride')
    if fmt not in PAIR_FORMATS:
        raise PeraConfigError(f'cut_hr_mr_pairs: format must be one of {PAIR_FORMATS}, got {fmt!r}')
    mr_path, hr_path, out_dir = str(mr_path), str(hr_path), Path(out_dir)
    pair = pair_name(mr_path, hr_path)
    mr, hr = _read_scene(mr_path, 'MR', pair), _read_scene(hr_path, 'HR', pair)
    if mr.shape[2] != hr.shape[2]:
        raise PeraDataError(
            f'{pair}: the MR scene has {mr.shape[2]} bands, the HR scene {hr.shape[2]}'
        )
    mr_geo, hr_geo = raster_georef(mr_path), raster_georef(hr_path)
    if (mr_geo is None) != (hr_geo is None):
        which = 'MR' if mr_geo is None else 'HR'
        raise PeraDataError(f'{pair}: the {which} scene has no CRS but the other one has')
    offset = (0, 0) if mr_geo is None else hr_offset_in_hr_pixels(mr_geo, hr_geo, scale, pair)
    windows = tile_windows(mr.shape[:2], hr.shape[:2], offset, scale, tile, stride)
    if not windows:
        raise PeraDataError(
            f'{pair}: no {tile} px MR tile fits in both scenes (MR {mr.shape[0]}x{mr.shape[1]}, '
            f'HR {hr.shape[0]}x{hr.shape[1]}, HR offset {offset}, scale {scale})'
        )
    name = name or Path(mr_path).stem
    size = scale * tile
    pairs = []
    for r, c in tqdm(windows, desc=f'cutting {name}', unit='pair', disable=not progress):
        hy, hx = offset[0] + scale * r, offset[1] + scale * c
        rel = (f'mr/{name}_{r}_{c}.{fmt}', f'hr/{name}_{r}_{c}.{fmt}')
        mr_geo_t = None if mr_geo is None else (mr_geo[0], mr_geo[1] @ _translation(c, r))
        hr_geo_t = None if hr_geo is None else (hr_geo[0], hr_geo[1] @ _translation(hx, hy))
        _write(out_dir / rel[0], mr[r : r + tile, c : c + tile], mr_geo_t, fmt)
        _write(out_dir / rel[1], hr[hy : hy + size, hx : hx + size], hr_geo_t, fmt)
        pairs.append(rel)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ann_file).write_text(''.join(f'{m} {h}\n' for m, h in pairs))
    return pairs


def _translation(col: int, row: int):
    from affine import Affine

    return Affine.translation(col, row)
