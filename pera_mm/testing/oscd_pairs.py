# Copyright (c) pera-mm contributors. All rights reserved.
"""Real-pixel HR/MR pairs and segmentation tiles from the OSCD Sentinel-2 samples.

No co-registered high-/mid-resolution sample (e.g. VENµS 5 m with Sentinel-2 10 m) is
available to the tests, so the HR/MR pairs built here SIMULATE the scale: the HR image is
the OSCD 10 m stack of bands B02/B03/B04/B08 itself, and the MR image is that stack
area-downsampled by ``s`` (the mean of each s x s block, i.e. a 20 m image at s = 2). The
pixels are real; the scale relation is made. GeoTIFFs carry consistent geotransforms:
the HR file the OSCD band's, the MR file the same origin with an s times larger pixel.

The OSCD change maps (``<city>-cm.tif``, values 1 = no change, 2 = change) serve as
2-class segmentation labels for the linear probe, written as PNGs mapped to
{0 = no change, 1 = change}.

Every function takes the OSCD folder (``<shared data>/OSCD``); tests get it through the
``shared_path`` fixture.
"""

from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from ..utils.errors import PeraDataError, PeraFileNotFoundError

#: image and label sub-folders of the OSCD sample
OSCD_IMAGES = 'Onera Satellite Change Detection dataset - Images'
OSCD_LABELS = 'Onera Satellite Change Detection dataset - Train Labels'
#: the Sentinel-2 10 m bands (blue, green, red, NIR), in stacking order
S2_10M_BANDS = ('B02', 'B03', 'B04', 'B08')
OSCD_CITIES = ('bercy', 'paris')


def oscd_stack(oscd_root: Union[str, Path], city: str, date: str = 'imgs_1'):
    """The 4-band (H, W, 4) uint16 stack B02/B03/B04/B08 of one OSCD city and date.

    Returns:
        tuple: (array, CRS, affine geotransform) of the 10 m grid.
    """
    import rasterio

    folder = Path(oscd_root) / OSCD_IMAGES / city / date
    bands, crs, transform = [], None, None
    for band in S2_10M_BANDS:
        files = sorted(folder.glob(f'*_{band}.tif'))
        if len(files) != 1:
            raise PeraFileNotFoundError(f'{folder}: expected one *_{band}.tif, found {len(files)}')
        with rasterio.open(files[0]) as src:
            bands.append(src.read(1))
            crs, transform = src.crs, src.transform
    return np.stack(bands, axis=-1), crs, transform


def oscd_change_label(oscd_root: Union[str, Path], city: str) -> np.ndarray:
    """The (H, W) change map of a city as uint8 {0 = no change, 1 = change} (file: {1, 2})."""
    import rasterio

    path = Path(oscd_root) / OSCD_LABELS / city / 'cm' / f'{city}-cm.tif'
    if not path.is_file():
        raise PeraFileNotFoundError(f'OSCD change map not found: {path}')
    with rasterio.open(path) as src:
        label = src.read(1)
    values = set(np.unique(label).tolist())
    if not values <= {1, 2}:
        raise PeraDataError(f'{path}: expected values 1 and 2, found {sorted(values)}')
    return (label == 2).astype(np.uint8)


def area_downsample(array: np.ndarray, scale: int) -> np.ndarray:
    """Mean of every ``scale`` x ``scale`` block of an (H, W, C) array, as float32.

    H and W must be multiples of ``scale``.
    """
    h, w, c = array.shape
    if h % scale or w % scale:
        raise PeraDataError(f'area_downsample: {h}x{w} is not a multiple of scale {scale}')
    blocks = array.astype(np.float64).reshape(h // scale, scale, w // scale, scale, c)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


def write_geotiff(path: Union[str, Path], array: np.ndarray, crs=None, transform=None) -> Path:
    """Write an (H, W, C) array as a C-band GeoTIFF (georeferenced when ``crs`` is given)."""
    import rasterio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w, c = array.shape
    profile = dict(driver='GTiff', width=w, height=h, count=c, dtype=array.dtype.name)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(np.moveaxis(array, -1, 0))
    return path


def write_simulated_pair(
    out_dir: Union[str, Path],
    name: str,
    hr: np.ndarray,
    crs,
    transform,
    scale: int = 2,
    fmt: str = 'tif',
) -> Dict:
    """Write ``hr`` and its area-downsampled MR (simulated scale) as one pair.

    ``hr`` is cropped to a multiple of ``scale`` first. GeoTIFFs: HR with ``transform``,
    MR with the same origin and ``scale`` times the pixel size. ``.npy``: (H, W, C).

    Returns:
        dict: ``mr``/``hr`` paths relative to ``out_dir``, and the ``mr_array`` /
        ``hr_array`` written.
    """
    from affine import Affine

    out_dir = Path(out_dir)
    h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
    hr = np.ascontiguousarray(hr[:h, :w])
    mr = area_downsample(hr, scale)
    rel = dict(mr=f'mr/{name}.{fmt}', hr=f'hr/{name}.{fmt}')
    for key, array in (('mr', mr), ('hr', hr)):
        path = out_dir / rel[key]
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == 'npy':
            np.save(path, array)
        elif fmt == 'tif':
            geo = transform if key == 'hr' else transform @ Affine.scale(scale)
            write_geotiff(path, array, crs, geo)
        else:
            raise PeraDataError(f"write_simulated_pair: fmt must be 'tif' or 'npy', got {fmt!r}")
    return dict(**rel, mr_array=mr, hr_array=hr)


def build_oscd_pairs(
    oscd_root: Union[str, Path],
    out_dir: Union[str, Path],
    scale: int = 2,
    fmt: str = 'tif',
    cities: Sequence[str] = OSCD_CITIES,
    date: str = 'imgs_1',
    ann_file: str = 'pairs.txt',
) -> Tuple[Path, List[Dict]]:
    """Write one simulated HR/MR pair per city and the annotation file listing them.

    The annotation file holds one ``<mr path> <hr path>`` line per pair, relative to
    ``out_dir`` (the :class:`PairedHRMRDataset` format).

    Returns:
        tuple: (annotation file, the pairs of :func:`write_simulated_pair`).
    """
    out_dir = Path(out_dir)
    pairs = []
    for city in cities:
        hr, crs, transform = oscd_stack(oscd_root, city, date)
        pairs.append(write_simulated_pair(out_dir, city, hr, crs, transform, scale, fmt))
    ann = out_dir / ann_file
    ann.write_text(''.join(f'{p["mr"]} {p["hr"]}\n' for p in pairs))
    return ann, pairs


def write_oscd_seg_tiles(
    oscd_root: Union[str, Path],
    out_dir: Union[str, Path],
    splits: Dict[str, Sequence[str]] = None,
    tile: int = 64,
    dates: Sequence[str] = ('imgs_1',),
) -> Dict[str, int]:
    """Cut the 4-band stacks and change maps into ``tile`` px segmentation samples.

    Layout (MMSeg's): ``img_dir/<split>/<city>_<date>_<y>_<x>.npy`` ((H, W, 4) uint16 DN)
    and ``ann_dir/<split>/<same name>.png`` ({0 = no change, 1 = change}); the tiles of a
    city do not overlap, partial tiles at the border are dropped. The change map is the
    label of either date's image (a stand-in task: real labels on real pixels).

    Args:
        splits (dict): split name -> cities. Defaults to bercy = train, paris = val.

    Returns:
        dict: split name -> number of tiles written.
    """
    from PIL import Image

    splits = splits or dict(train=['bercy'], val=['paris'])
    out_dir = Path(out_dir)
    counts = {}
    for split, cities in splits.items():
        (out_dir / 'img_dir' / split).mkdir(parents=True, exist_ok=True)
        (out_dir / 'ann_dir' / split).mkdir(parents=True, exist_ok=True)
        counts[split] = 0
        for city in cities:
            label = oscd_change_label(oscd_root, city)
            for date in dates:
                stack, _, _ = oscd_stack(oscd_root, city, date)
                if stack.shape[:2] != label.shape:
                    raise PeraDataError(
                        f'OSCD {city}/{date}: image {stack.shape[:2]} and change map '
                        f'{label.shape} differ in size'
                    )
                for y in range(0, stack.shape[0] - tile + 1, tile):
                    for x in range(0, stack.shape[1] - tile + 1, tile):
                        name = f'{city}_{date}_{y}_{x}'
                        np.save(
                            out_dir / 'img_dir' / split / f'{name}.npy',
                            np.ascontiguousarray(stack[y : y + tile, x : x + tile]),
                        )
                        Image.fromarray(label[y : y + tile, x : x + tile]).save(
                            out_dir / 'ann_dir' / split / f'{name}.png'
                        )
                        counts[split] += 1
    return counts
