# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/dataset_converters/tile_scenes.py on real scenes: OSCD band folders, a GeoTIFF
stack written here from them (with a no-data pad), and the LoveDA / DOTA pictures.

Checks tile pixels against the source windows, each tile's geotransform against the
scene's shifted by the window, the no-data skip rule, the two uint8 scaling rules by
hand, and resuming a run killed mid-scene (the ``PERA_MM_TILE_STOP_AFTER`` hook).
"""

import json
import multiprocessing
import os

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.transform import Affine

from pera_mm.datasets.converters.scene_tiling import (
    DONE_MARKER,
    STOP_AFTER_ENV,
    TilingSpec,
    scale_to_uint8,
    tile_scenes,
)
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError

TOOL = REPO_ROOT / 'tools' / 'dataset_converters' / 'tile_scenes.py'
OSCD = 'OSCD/Onera Satellite Change Detection dataset - Images'


def _band(folder, suffix):
    (path,) = folder.glob(f'*{suffix}.tif')
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def _read_tif(path):
    with rasterio.open(path) as src:
        return np.moveaxis(src.read(), 0, -1), src.transform, src.crs


@pytest.fixture(scope='module')
def paris(shared_path):
    return shared_path(f'{OSCD}/paris/imgs_1')


@pytest.mark.needs_shared
def test_band_folder_tiles_equal_windows_and_shifted_geotransform(tmp_path, paris):
    spec = TilingSpec(tile_size=128, overlap=32, bands=('B02', 'B03', 'B04', 'B08', 'B05'))
    (result,) = tile_scenes([str(paris)], tmp_path, spec)
    bands = [_band(paris, s) for s in ('B02', 'B03', 'B04', 'B08')]
    b05, b05_transform, _ = _band(paris, 'B05')
    height, width = bands[0][0].shape  # 408 x 390 at 10 m
    starts_y = [0, 96, 192, 280]  # stride 96, the last one ends at 408
    starts_x = [0, 96, 192, 262]  # ... at 390
    assert result['written'] == 16 and result['skipped_nodata'] == 0
    scene_transform = bands[0][1]
    for y0 in starts_y:
        for x0 in starts_x:
            tile, transform, crs = _read_tif(tmp_path / 'imgs_1' / f'imgs_1_{x0}_{y0}.tif')
            assert tile.shape == (128, 128, 5) and tile.dtype == np.uint16
            for i, (array, _, _) in enumerate(bands):  # 10 m bands: the exact window
                np.testing.assert_array_equal(tile[..., i], array[y0 : y0 + 128, x0 : x0 + 128])
            # geotransform = the scene's, shifted by the window (b = d = 0 here)
            assert transform.a == scene_transform.a and transform.e == scene_transform.e
            assert transform.c == pytest.approx(
                scene_transform.c + x0 * scene_transform.a, abs=1e-12
            )
            assert transform.f == pytest.approx(
                scene_transform.f + y0 * scene_transform.e, abs=1e-12
            )
            assert crs == bands[0][2]
            # B05 (20 m, 204 x 195) resampled onto the 10 m grid: its window means agree
            half = b05[y0 // 2 : (y0 + 128) // 2, x0 // 2 : (x0 + 128) // 2].astype(float)
            assert abs(tile[..., 4].mean() - half.mean()) < 0.02 * half.mean()
    assert b05_transform.a == pytest.approx(2 * scene_transform.a, rel=1e-2)
    assert (tmp_path / 'imgs_1' / DONE_MARKER).is_file()


@pytest.mark.needs_shared
def test_nodata_padded_geotiff_skips_mostly_empty_tiles(tmp_path, paris):
    stack = np.stack([_band(paris, s)[0] for s in ('B04', 'B03', 'B02')], axis=0)  # 3x408x390
    padded = np.zeros((3, 408, 640), np.uint16)  # 250 no-data (0) columns on the right
    padded[:, :, :390] = stack
    transform = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5400000.0)
    scene = tmp_path / 'scene.tif'
    with rasterio.open(
        scene, 'w', driver='GTiff', width=640, height=408, count=3, dtype='uint16',
        crs='EPSG:32631', transform=transform, nodata=0,
    ) as dst:  # fmt: skip
        dst.write(padded)
    (result,) = tile_scenes([str(scene)], tmp_path / 'out', TilingSpec(tile_size=128))
    # columns 0/128/256/384/512, rows 0/128/256/280: the tiles at x0=384 hold 6 real
    # columns of 128 (95 % no-data) and at x0=512 none; both are skipped (> 0.5)
    kept = sorted(p.name for p in (tmp_path / 'out' / 'scene').glob('*.tif'))
    expected = sorted(f'scene_{x}_{y}.tif' for y in (0, 128, 256, 280) for x in (0, 128, 256))
    assert kept == expected
    assert result['written'] == 12 and result['skipped_nodata'] == 8
    tile, tile_transform, crs = _read_tif(tmp_path / 'out' / 'scene' / 'scene_256_280.tif')
    np.testing.assert_array_equal(tile, np.moveaxis(padded[:, 280:408, 256:384], 0, -1))
    assert tile_transform == Affine(10.0, 0.0, 500000.0 + 2560, 0.0, -10.0, 5400000.0 - 2800)
    assert crs.to_epsg() == 32631
    # at 0.99 the 95 %-empty tiles stay; only the all-no-data ones go
    spec = TilingSpec(tile_size=128, max_nodata=0.99)
    (loose,) = tile_scenes([str(scene)], tmp_path / 'loose', spec)
    assert loose['written'] == 16 and loose['skipped_nodata'] == 4


def test_scaling_rules_by_hand():
    pixels = np.array([[[0], [1000]], [[2550], [5000]]], np.uint16)  # 2 x 2, one band
    valid = np.ones((2, 2), bool)
    divide = scale_to_uint8(pixels, valid, TilingSpec(tile_size=1, scaling='divide', divisor=10))
    np.testing.assert_array_equal(divide[..., 0], [[0, 100], [255, 255]])  # 500 clipped
    spec = TilingSpec(tile_size=1, scaling='percentile', percentiles=(0.0, 100.0))
    full = scale_to_uint8(pixels, valid, spec)
    # (v - 0) / 5000 * 255, rounded: 0, 51, 130.05 -> 130, 255
    np.testing.assert_array_equal(full[..., 0], [[0, 51], [130, 255]])
    # no-data pixels (valid False) do not enter the percentiles
    masked = scale_to_uint8(pixels, np.array([[True, True], [True, False]]), spec)
    np.testing.assert_array_equal(masked[..., 0], [[0, 100], [255, 255]])  # hi = 2550


@pytest.mark.needs_shared
def test_percentile_png_tiles_of_a_real_scene(tmp_path, paris):
    spec = TilingSpec(
        tile_size=390, bands=('B04', 'B03', 'B02'), scaling='percentile', out_format='png'
    )
    tile_scenes([str(paris)], tmp_path, spec)
    tile = np.array(Image.open(tmp_path / 'imgs_1' / 'imgs_1_0_0.png'))
    red = _band(paris, 'B04')[0].astype(float)
    low, high = np.percentile(red, (2, 98))
    expected = np.clip(np.rint((red[:390, :390] - low) / (high - low) * 255), 0, 255)
    np.testing.assert_array_equal(tile[..., 0], expected.astype(np.uint8))
    sidecar = json.loads((tmp_path / 'imgs_1' / 'imgs_1_0_0.png.geo.json').read_text())
    assert sidecar['window'] == dict(x0=0, y0=0, width=390, height=390)
    assert 'WGS 84' in sidecar['crs']
    assert sidecar['transform'][1] == pytest.approx(_band(paris, 'B04')[1].a)


@pytest.mark.needs_shared
def test_picture_tiles_overlap_and_sidecar(tmp_path, shared_path):
    demo = shared_path('DOTA/mmrotate_demo/demo.jpg')
    source = np.array(Image.open(demo).convert('RGB'))
    (result,) = tile_scenes([str(demo)], tmp_path, TilingSpec(tile_size=512, overlap=128))
    height, width = source.shape[:2]
    count = (int(np.ceil((height - 512) / 384)) + 1) * (int(np.ceil((width - 512) / 384)) + 1)
    assert result['written'] == count
    for path in (tmp_path / 'demo').glob('*.png'):
        x0, y0 = (int(v) for v in path.stem.split('_')[-2:])
        np.testing.assert_array_equal(
            np.array(Image.open(path)), source[y0 : y0 + 512, x0 : x0 + 512]
        )
        sidecar = json.loads(path.with_name(path.name + '.geo.json').read_text())
        assert sidecar['window'] == dict(x0=x0, y0=y0, width=512, height=512)
        assert sidecar['transform'] is None  # a JPEG carries no georeferencing


@pytest.mark.needs_shared
def test_two_workers_write_the_same_tiles(tmp_path, shared_path):
    scenes = [str(shared_path(f'{OSCD}/{city}/imgs_2')) for city in ('paris', 'bercy')]
    spec = TilingSpec(tile_size=128, overlap=64, bands=('B04', 'B08'))
    one = tile_scenes(scenes, tmp_path / 'one', spec, workers=1)
    two = tile_scenes(scenes, tmp_path / 'two', spec, workers=2)
    assert (
        [r['written'] for r in one] == [r['written'] for r in two] == [36, 30]
    )  # 6 x 6 on 408 x 390, 6 x 5 on 395 x 360
    files = sorted(p.relative_to(tmp_path / 'one') for p in (tmp_path / 'one').rglob('*.tif'))
    assert files == sorted(
        p.relative_to(tmp_path / 'two') for p in (tmp_path / 'two').rglob('*.tif')
    )
    for rel in files:
        np.testing.assert_array_equal(
            _read_tif(tmp_path / 'one' / rel)[0], _read_tif(tmp_path / 'two' / rel)[0]
        )
    assert (tmp_path / 'one' / 'paris' / 'imgs_2' / 'paris_imgs_2_0_0.tif').is_file()


def _run_killed_after_20_tiles(scenes, out_dir):
    os.environ[STOP_AFTER_ENV] = '20'  # the hook: os._exit(17) after the 20th tile
    tile_scenes(scenes, out_dir, TilingSpec(tile_size=256))


@pytest.mark.needs_shared
def test_resume_after_a_kill_mid_scene(tmp_path, shared_path):
    rural = shared_path('LoveDA/Train/Rural/images_png')
    scenes = [str(rural / '0.png'), str(rural / '1.png')]  # 1024 px: 16 tiles of 256 each
    child = multiprocessing.get_context('fork').Process(
        target=_run_killed_after_20_tiles, args=(scenes, str(tmp_path / 'run'))
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == 17  # died mid-run, without cleaning up
    first, second = tmp_path / 'run' / '0', tmp_path / 'run' / '1'
    assert (first / DONE_MARKER).is_file() and not (second / DONE_MARKER).exists()
    assert len(list(second.glob('*.png'))) == 4  # the interrupted scene is a quarter done
    stamps = {p.name: p.stat().st_mtime_ns for p in first.glob('*.png')}
    resumed = tile_scenes(scenes, tmp_path / 'run', TilingSpec(tile_size=256))
    assert [r['resumed'] for r in resumed] == [True, False]
    assert {p.name: p.stat().st_mtime_ns for p in first.glob('*.png')} == stamps
    tile_scenes(scenes, tmp_path / 'clean', TilingSpec(tile_size=256))
    run_files = sorted(p.relative_to(tmp_path / 'run') for p in (tmp_path / 'run').rglob('*'))
    clean = sorted(p.relative_to(tmp_path / 'clean') for p in (tmp_path / 'clean').rglob('*'))
    assert run_files == clean and len([p for p in clean if p.suffix == '.png']) == 32
    for rel in clean:
        if rel.suffix == '.png':
            run_tile = np.array(Image.open(tmp_path / 'run' / rel))
            np.testing.assert_array_equal(run_tile, np.array(Image.open(tmp_path / 'clean' / rel)))


def test_bad_settings_and_inputs(tmp_path, capsys, load_script):
    with pytest.raises(PeraConfigError, match='overlap'):
        tile_scenes([str(tmp_path)], tmp_path / 'o', TilingSpec(tile_size=64, overlap=64))
    cli = load_script(TOOL)
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path / 'missing.tif'), '-o', str(tmp_path / 'o'), '--tile-size', '8'])
    assert exit_info.value.code == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f'tile_scenes.py: file not found: {tmp_path / "missing.tif"}: no such scene file or folder'
    ]
    folder = tmp_path / 'bands'
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(folder), '-o', str(tmp_path / 'o'), '--tile-size', '8', '--bands', 'B02'])
    assert exit_info.value.code == 4
    assert 'expected exactly one file *B02.tif' in capsys.readouterr().err
