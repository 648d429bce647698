# Copyright (c) pera-mm contributors. All rights reserved.
"""Cut large scenes into georeferenced tiles (tools/dataset_converters/tile_scenes.py).

A scene is one raster file (GeoTIFF through rasterio; PNG/JPEG/BMP through Pillow) or a
folder of single-band files (Sentinel-2 / OSCD: ``<folder>/*<band>.tif``) stacked in the
order of a band list. Bands stored coarser than the finest one are resampled onto the
finest band's grid (``rasterio.warp.reproject``, bilinear). Tiles start every
``tile - overlap`` pixels; the last one of each row and column is moved back to end at
the border (no padding), as in :func:`sliding_window_starts`.

Output, per scene, in its own folder (resumable: ``.done`` is written last)::

    out_dir/<scene>/<stem>_<x0>_<y0>.tif   GeoTIFF with the window's CRS and geotransform
    out_dir/<scene>/<stem>_<x0>_<y0>.png   + <same>.geo.json (CRS, geotransform, window)
    out_dir/<scene>/.done                  JSON: tiles written/skipped, the settings
"""

import json
import multiprocessing
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ...utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError
from .sliding_window import sliding_window_starts

#: Scene files read one per scene (GeoTIFF via rasterio, the others via Pillow).
SCENE_SUFFIXES = ('.tif', '.tiff', '.png', '.jpg', '.jpeg', '.bmp')
GEOTIFF_SUFFIXES = ('.tif', '.tiff')
#: Name of the per-scene completion marker.
DONE_MARKER = '.done'
#: Test hook: the process ends abruptly (``os._exit``) after writing this many tiles
#: (for single-process runs: a worker pool would wait for its dead worker).
STOP_AFTER_ENV = 'PERA_MM_TILE_STOP_AFTER'
SCALINGS = ('none', 'percentile', 'divide')


@dataclass(frozen=True)
class TilingSpec:
    """How scenes are tiled.

    Args:
        tile_size (int): tile side in pixels.
        overlap (int): pixels shared by neighbouring tiles (stride = tile - overlap).
        bands (tuple[str, ...]): for folder scenes, the band-file endings to stack, in
            order (``('B04', 'B03', 'B02')`` reads ``*B04.tif``, ...); empty for files.
        band_ext (str): extension of the band files. Defaults to '.tif'.
        max_nodata (float): a tile whose fraction of no-data pixels is ABOVE this is
            skipped. Defaults to 0.5 (tiles that are mostly no-data).
        nodata (float, optional): the no-data value; None uses the file's declared
            value, else 0. A pixel is no-data when ALL its bands equal it (or are NaN).
        scaling (str): ``'none'`` keeps the dtype; ``'percentile'`` maps each band
            linearly from its scene percentiles ``[p_low, p_high]`` (over valid pixels)
            to 0..255; ``'divide'`` is ``round(value / divisor)``; both clip to 0..255
            and give uint8.
        percentiles (tuple[float, float]): the percentile pair. Defaults to (2, 98).
        divisor (float): the divisor of ``'divide'``. Defaults to 10000 / 255 (Sentinel-2
            reflectance x 10000 in 0..1 -> 0..255).
        out_format (str): ``'tif'`` (GeoTIFF), ``'png'`` (+ a ``.geo.json`` sidecar) or
            ``'auto'``: GeoTIFF for GeoTIFF and band-folder scenes, PNG for the others.
    """

    tile_size: int
    overlap: int = 0
    bands: Tuple[str, ...] = ()
    band_ext: str = '.tif'
    max_nodata: float = 0.5
    nodata: Optional[float] = None
    scaling: str = 'none'
    percentiles: Tuple[float, float] = (2.0, 98.0)
    divisor: float = 10000 / 255
    out_format: str = 'auto'

    def check(self) -> None:
        """Raise :class:`PeraConfigError` for a setting that cannot work."""
        if not isinstance(self.tile_size, int) or self.tile_size < 1:
            raise PeraConfigError(f'tile size must be a positive int, got {self.tile_size!r}')
        if not isinstance(self.overlap, int) or not 0 <= self.overlap < self.tile_size:
            raise PeraConfigError(
                f'overlap must be an int in [0, tile size {self.tile_size}), got {self.overlap!r}'
            )
        if not 0.0 <= self.max_nodata <= 1.0:
            raise PeraConfigError(f'max no-data fraction must be in [0, 1], got {self.max_nodata}')
        if self.scaling not in SCALINGS:
            raise PeraConfigError(f'scaling {self.scaling!r}: expected one of {SCALINGS}')
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise PeraConfigError(
                f'percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}'
            )
        if self.divisor <= 0:
            raise PeraConfigError(f'divisor must be > 0, got {self.divisor}')
        if self.out_format not in ('auto', 'tif', 'png'):
            raise PeraConfigError(f"format {self.out_format!r}: expected 'auto', 'tif' or 'png'")

    @property
    def stride(self) -> int:
        return self.tile_size - self.overlap


@dataclass
class Scene:
    """A stacked scene: ``(H, W, C)`` pixels, its grid and its no-data mask."""

    pixels: np.ndarray
    crs_wkt: Optional[str] = None
    transform: Optional[Tuple[float, ...]] = None  # GDAL order: c, a, b, f, d, e
    nodata: Optional[float] = None
    georeferenced: bool = False
    valid: np.ndarray = field(default=None)


@dataclass(frozen=True)
class SceneJob:
    """One scene to tile: its source path, output folder and file stem."""

    source: str
    out_dir: str
    stem: str


def _affine_tuple(transform) -> Tuple[float, ...]:
    return tuple(float(v) for v in transform.to_gdal())


def _read_geotiff(path: str):
    import rasterio

    try:
        with rasterio.open(path) as src:
            pixels = np.moveaxis(src.read(), 0, -1)
            crs = src.crs.to_wkt() if src.crs else None
            return pixels, crs, src.transform, src.nodata
    except (rasterio.errors.RasterioError, OSError) as err:
        raise PeraDataError(f'{path}: cannot be read as a GeoTIFF ({err})') from None


def _read_picture(path: str) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode == 'P':
                image = image.convert('RGB')
            array = np.array(image)
    except (OSError, ValueError) as err:
        raise PeraDataError(f'{path}: not a decodable image ({err})') from None
    return array[..., None] if array.ndim == 2 else array


def _band_file(folder: Path, band: str, ext: str) -> Path:
    matches = sorted(folder.glob(f'*{band}{ext}'))
    if len(matches) != 1:
        raise PeraDataError(
            f'{folder}: expected exactly one file *{band}{ext} for band {band!r}, '
            f'found {len(matches)}'
        )
    return matches[0]


def _stack_band_folder(folder: Path, spec: TilingSpec):
    """Stack the band files of ``folder``; coarser bands go onto the finest band's grid."""
    import rasterio
    from rasterio.warp import Resampling, reproject

    reads = [_read_geotiff(str(_band_file(folder, b, spec.band_ext))) for b in spec.bands]
    for (pixels, *_), band in zip(reads, spec.bands):
        if pixels.shape[2] != 1:
            raise PeraDataError(
                f'{folder}: band file of {band!r} has {pixels.shape[2]} bands, expected 1'
            )
    # the finest band: smallest pixel area (the first one on ties)
    areas = [abs(t.a * t.e - t.b * t.d) for _, _, t, _ in reads]
    ref = int(np.argmin(areas))
    ref_pixels, ref_crs, ref_transform, ref_nodata = reads[ref]
    height, width = ref_pixels.shape[:2]
    stacked = np.empty((height, width, len(reads)), dtype=ref_pixels.dtype)
    for i, (pixels, crs, transform, nodata) in enumerate(reads):
        if pixels.shape[:2] == (height, width) and transform.almost_equals(ref_transform):
            stacked[..., i] = pixels[..., 0]
            continue
        dest = np.zeros((height, width), dtype=np.float64)
        reproject(
            pixels[..., 0].astype(np.float64),
            dest,
            src_transform=transform,
            src_crs=rasterio.crs.CRS.from_wkt(crs) if crs else None,
            dst_transform=ref_transform,
            dst_crs=rasterio.crs.CRS.from_wkt(ref_crs) if ref_crs else None,
            resampling=Resampling.bilinear,
        )
        if np.issubdtype(stacked.dtype, np.integer):
            info = np.iinfo(stacked.dtype)
            dest = np.clip(np.rint(dest), info.min, info.max)
        stacked[..., i] = dest
    return stacked, ref_crs, ref_transform, ref_nodata


def read_scene(source: str, spec: TilingSpec) -> Scene:
    """Read one scene as a :class:`Scene` (pixels, grid, no-data mask).

    Raises:
        PeraFileNotFoundError: ``source`` does not exist.
        PeraDataError: the file cannot be decoded, or a band file is missing or duplicated.
        PeraConfigError: a folder is given without a band list, or a file with one.
    """
    path = Path(source)
    if not path.exists():
        raise PeraFileNotFoundError(f'{source}: no such scene file or folder')
    if path.is_dir():
        if not spec.bands:
            raise PeraConfigError(f'{source} is a folder: give --bands to stack its band files')
        pixels, crs, transform, nodata = _stack_band_folder(path, spec)
        georef = True
    elif path.suffix.lower() in GEOTIFF_SUFFIXES:
        pixels, crs, transform, nodata = _read_geotiff(source)
        georef = crs is not None or not transform.is_identity
    else:
        pixels, crs, transform, nodata, georef = _read_picture(source), None, None, None, False
    nodata = spec.nodata if spec.nodata is not None else (nodata if nodata is not None else 0)
    invalid = pixels == nodata
    if np.issubdtype(pixels.dtype, np.floating):
        invalid |= np.isnan(pixels)
    scene = Scene(
        pixels=pixels,
        crs_wkt=crs,
        transform=_affine_tuple(transform) if transform is not None else None,
        nodata=float(nodata),
        georeferenced=georef,
        valid=~invalid.all(axis=2),
    )
    return scene


def scale_to_uint8(pixels: np.ndarray, valid: np.ndarray, spec: TilingSpec) -> np.ndarray:
    """Apply the spec's uint16 -> uint8 rule to a scene (per band, one scale per scene).

    ``'percentile'``: ``lo, hi`` = the ``percentiles`` of the band over the valid
    pixels; ``round((v - lo) / (hi - lo) * 255)`` clipped to 0..255 (``hi == lo`` maps
    everything to 0). ``'divide'``: ``round(v / divisor)`` clipped to 0..255.
    ``'none'`` returns ``pixels`` unchanged.
    """
    if spec.scaling == 'none':
        return pixels
    values = pixels.astype(np.float64)
    if spec.scaling == 'divide':
        scaled = values / spec.divisor
    else:
        scaled = np.empty_like(values)
        for band in range(values.shape[2]):
            sample = values[..., band][valid]
            if sample.size == 0:
                scaled[..., band] = 0
                continue
            low, high = np.percentile(sample, spec.percentiles)
            span = high - low
            scaled[..., band] = 0 if span == 0 else (values[..., band] - low) / span * 255
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def tile_windows(height: int, width: int, spec: TilingSpec) -> List[Tuple[int, int]]:
    """The tiles' top-left corners ``(x0, y0)``, row by row."""
    ys = sliding_window_starts(height, spec.tile_size, spec.stride)
    xs = sliding_window_starts(width, spec.tile_size, spec.stride)
    return [(x, y) for y in ys for x in xs]


def shifted_transform(transform: Sequence[float], x0: int, y0: int) -> Tuple[float, ...]:
    """The GDAL geotransform of the window starting at pixel ``(x0, y0)``."""
    c, a, b, f, d, e = transform
    return (c + a * x0 + b * y0, a, b, f + d * x0 + e * y0, d, e)


def _tile_format(source: str, spec: TilingSpec) -> str:
    if spec.out_format != 'auto':
        return spec.out_format
    path = Path(source)
    return 'tif' if path.is_dir() or path.suffix.lower() in GEOTIFF_SUFFIXES else 'png'


def _write_geotiff(
    path: Path, tile: np.ndarray, scene: Scene, x0: int, y0: int, nodata: Optional[float]
) -> None:
    import rasterio
    from rasterio.transform import Affine

    profile = dict(
        driver='GTiff',
        height=tile.shape[0],
        width=tile.shape[1],
        count=tile.shape[2],
        dtype=tile.dtype,
    )
    if scene.georeferenced:
        profile['transform'] = Affine.from_gdal(*shifted_transform(scene.transform, x0, y0))
        if scene.crs_wkt:
            profile['crs'] = rasterio.crs.CRS.from_wkt(scene.crs_wkt)
    if nodata is not None:
        profile['nodata'] = nodata
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(np.moveaxis(tile, -1, 0))


def _write_png(path: Path, tile: np.ndarray, scene: Scene, x0: int, y0: int, source: str) -> None:
    bands, dtype = tile.shape[2], tile.dtype
    if dtype == np.uint8 and bands in (1, 3, 4):
        Image.fromarray(tile[..., 0] if bands == 1 else tile).save(path, compress_level=1)
    elif dtype == np.uint16 and bands == 1:
        Image.fromarray(tile[..., 0]).save(path, compress_level=1)
    else:
        raise PeraConfigError(
            f'{source}: PNG tiles need 1, 3 or 4 uint8 bands (or 1 uint16 band), the scene has '
            f'{bands} {dtype} band(s); use --format tif or --scaling percentile|divide'
        )
    sidecar = dict(
        source=str(source),
        window=dict(x0=x0, y0=y0, width=tile.shape[1], height=tile.shape[0]),
        crs=scene.crs_wkt,
        transform=list(shifted_transform(scene.transform, x0, y0)) if scene.georeferenced else None,
    )
    Path(f'{path}.geo.json').write_text(json.dumps(sidecar))


def _settings(spec: TilingSpec) -> dict:
    settings = asdict(spec)
    settings['bands'] = list(spec.bands)
    settings['percentiles'] = list(spec.percentiles)
    return settings


def scene_is_done(out_dir, spec: TilingSpec) -> bool:
    """Whether ``out_dir`` holds a finished scene tiled with the same settings."""
    marker = Path(out_dir, DONE_MARKER)
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get('settings') == _settings(spec)
    except (OSError, ValueError):
        return False


_tiles_written_here = 0  # tiles this process wrote, for the STOP_AFTER_ENV hook


def _count_tile() -> None:
    global _tiles_written_here
    _tiles_written_here += 1
    limit = os.environ.get(STOP_AFTER_ENV, '')
    if limit and _tiles_written_here >= int(limit):
        os._exit(17)  # the test hook: die mid-run, without cleaning up


def tile_scene(job: SceneJob, spec: TilingSpec) -> dict:
    """Tile one scene into ``job.out_dir`` (cleared first unless already finished).

    Returns:
        dict: ``source``, ``written``, ``skipped_nodata``, ``resumed`` (True when the
        scene was already done) and ``note`` (why a scene gave no tile, else '').
    """
    out_dir = Path(job.out_dir)
    result = dict(source=job.source, written=0, skipped_nodata=0, resumed=False, note='')
    if scene_is_done(out_dir, spec):
        done = json.loads((out_dir / DONE_MARKER).read_text())
        result.update(written=done['written'], skipped_nodata=done['skipped_nodata'], resumed=True)
        return result
    if out_dir.exists():  # an interrupted run, or other settings: start the scene over
        shutil.rmtree(out_dir)
    scene = read_scene(job.source, spec)
    height, width = scene.pixels.shape[:2]
    if height < spec.tile_size or width < spec.tile_size:
        result['note'] = f'{height}x{width} is smaller than the {spec.tile_size}-pixel tile'
        windows = []
    else:
        windows = tile_windows(height, width, spec)
    pixels = scale_to_uint8(scene.pixels, scene.valid, spec)
    fmt = _tile_format(job.source, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    # scaled tiles are uint8 pictures: the scene's no-data value no longer applies
    nodata = scene.nodata if spec.scaling == 'none' else None
    size = spec.tile_size
    for x0, y0 in windows:
        valid = scene.valid[y0 : y0 + size, x0 : x0 + size]
        if 1.0 - valid.mean() > spec.max_nodata:
            result['skipped_nodata'] += 1
            continue
        tile = np.ascontiguousarray(pixels[y0 : y0 + size, x0 : x0 + size])
        path = out_dir / f'{job.stem}_{x0}_{y0}.{fmt}'
        if fmt == 'tif':
            _write_geotiff(path, tile, scene, x0, y0, nodata)
        else:
            _write_png(path, tile, scene, x0, y0, job.source)
        result['written'] += 1
        _count_tile()
    marker = dict(
        source=job.source,
        written=result['written'],
        skipped_nodata=result['skipped_nodata'],
        settings=_settings(spec),
    )
    (out_dir / DONE_MARKER).write_text(json.dumps(marker))
    return result


def find_scenes(inputs: Sequence[str], spec: TilingSpec) -> List[str]:
    """The scenes named by ``inputs``: files, folders of files, or band folders.

    With ``spec.bands`` every folder is one band-folder scene; without, a folder is
    searched recursively for scene files (:data:`SCENE_SUFFIXES`).

    Raises:
        PeraFileNotFoundError: an input does not exist.
        PeraDataError: no scene was found.
    """
    scenes = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise PeraFileNotFoundError(f'{item}: no such scene file or folder')
        if path.is_file() or spec.bands:
            scenes.append(str(path))
        else:
            scenes.extend(
                str(p) for p in sorted(path.rglob('*')) if p.suffix.lower() in SCENE_SUFFIXES
            )
    if not scenes:
        raise PeraDataError(f'no scene file ({", ".join(SCENE_SUFFIXES)}) found in {list(inputs)}')
    return scenes


def scene_jobs(scenes: Sequence[str], out_dir) -> List[SceneJob]:
    """One job per scene; its folder is the scene path relative to the scenes' common
    parent (extension dropped), so scenes with equal names in different folders differ."""
    parents = [str(Path(s).resolve().parent) for s in scenes]
    root = os.path.commonpath(parents)
    jobs = []
    for scene in scenes:
        rel = Path(os.path.relpath(Path(scene).resolve(), root))
        rel = rel.with_suffix('') if Path(scene).is_file() else rel
        stem = '_'.join(rel.parts)
        jobs.append(SceneJob(source=str(scene), out_dir=str(Path(out_dir, rel)), stem=stem))
    names = [j.out_dir for j in jobs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise PeraDataError(
            f'two scenes would both be tiled into {dup} (same name, other extension)'
        )
    return jobs


def _run_job(args) -> dict:
    job, spec = args
    return tile_scene(job, spec)


def tile_scenes(
    inputs: Sequence[str],
    out_dir,
    spec: TilingSpec,
    workers: int = 1,
    progress: Optional[Callable[[Iterator], Iterator]] = None,
) -> List[dict]:
    """Tile every scene of ``inputs`` into ``out_dir``, ``workers`` scenes at a time.

    Finished scenes (their ``.done`` marker, same settings) are skipped, so an
    interrupted run is resumed by running it again.

    Returns:
        list[dict]: :func:`tile_scene`'s result per scene, in input order.
    """
    global _tiles_written_here
    spec.check()
    _tiles_written_here = 0  # before the pool forks: each worker counts its own tiles
    jobs = scene_jobs(find_scenes(inputs, spec), out_dir)
    tasks = [(job, spec) for job in jobs]
    wrap = progress or (lambda it, total: it)
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.get_context('fork').Pool(min(workers, len(jobs))) as pool:
            results = list(wrap(pool.imap(_run_job, tasks), len(tasks)))
    else:
        results = list(wrap(map(_run_job, tasks), len(tasks)))
    return results
