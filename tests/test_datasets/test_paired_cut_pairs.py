"""cut_hr_mr_pairs (logic and CLI) on real Sentinel-2 scenes (OSCD).

The scale is SIMULATED: the HR scene is the OSCD 10 m stack B02/B03/B04/B08, the MR
scene that stack area-downsampled by 2, both GeoTIFFs with consistent geotransforms.
"""

import numpy as np
import pytest
from affine import Affine

import pera_mm  # noqa: F401  (registration)
from pera_mm.datasets import PairedHRMRDataset
from pera_mm.datasets.converters import cut_hr_mr_pairs, tile_windows
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.oscd_pairs import area_downsample, build_oscd_pairs, write_geotiff
from pera_mm.utils import PeraDataError

rasterio = pytest.importorskip('rasterio')
TOOL = REPO_ROOT / 'tools/dataset_converters/cut_hr_mr_pairs.py'


@pytest.fixture(scope='module')
def scenes(shared_path, tmp_path_factory):
    root = tmp_path_factory.mktemp('scenes')
    _, (pair,) = build_oscd_pairs(shared_path('OSCD'), root, cities=['bercy'])
    return root, pair


def test_tile_windows_by_hand():
    # MR 10 x 9, HR 20 x 18, tile 4, stride 4: rows 0, 4; cols 0, 4
    assert tile_windows((10, 9), (20, 18), (0, 0), 2, 4, 4) == [(0, 0), (0, 4), (4, 0), (4, 4)]
    # the MR origin 2 HR rows above the HR scene: MR row 0 needs HR row -2 -> dropped
    assert tile_windows((10, 9), (20, 18), (-2, 0), 2, 4, 4) == [(4, 0), (4, 4)]


@pytest.mark.needs_shared
def test_cut_pairs_are_the_same_ground_window(scenes, tmp_path):
    root, pair = scenes
    mr_src, hr_src = pair['mr_array'], pair['hr_array']
    pairs = cut_hr_mr_pairs(
        root / pair['mr'], root / pair['hr'], tmp_path, scale=2, tile=48, progress=False
    )
    # MR 197 x 180 -> 4 x 3 tiles of 48 px
    assert len(pairs) == 12 and pairs[0] == ('mr/bercy_0_0.tif', 'hr/bercy_0_0.tif')
    ds = PairedHRMRDataset(
        'pairs.txt', str(tmp_path), pipeline=[dict(type='LoadHRMRPairFromFile', num_bands=4)]
    )
    assert len(ds) == 12
    for i in (0, 5, 11):  # every load re-checks sizes, bands, CRS and geotransforms
        out = ds[i]
        r, c = (int(v) for v in out['img_path'][:-4].split('_')[-2:])
        assert np.array_equal(out['img'], mr_src[r : r + 48, c : c + 48])
        assert np.array_equal(out['hr_img'], hr_src[2 * r : 2 * r + 96, 2 * c : 2 * c + 96])
        assert np.array_equal(area_downsample(out['hr_img'], 2), out['img'])
    with rasterio.open(tmp_path / 'mr/bercy_48_96.tif') as mr, rasterio.open(
        tmp_path / 'hr/bercy_48_96.tif'
    ) as hr:
        assert mr.transform.c == pytest.approx(hr.transform.c)
        assert mr.transform.a == pytest.approx(2 * hr.transform.a)


@pytest.mark.needs_shared
def test_cut_pairs_follow_an_hr_offset(scenes, tmp_path):
    root, pair = scenes
    with rasterio.open(root / pair['hr']) as src:
        crs, transform = src.crs, src.transform
    # an HR scene starting 6 HR rows and 10 HR columns into the grid (origin moved along)
    hr = pair['hr_array'][6:, 10:]
    write_geotiff(
        tmp_path / 'hr_shifted.tif',
        np.ascontiguousarray(hr),
        crs,
        transform @ Affine.translation(10, 6),
    )
    pairs = cut_hr_mr_pairs(
        root / pair['mr'], tmp_path / 'hr_shifted.tif', tmp_path / 'out', 2, 32, progress=False
    )
    # MR rows 0 (HR -6) and cols 0 (HR -10) are outside the HR scene: dropped
    assert pairs[0] == ('mr/bercy_32_32.tif', 'hr/bercy_32_32.tif')
    ds = PairedHRMRDataset(
        'pairs.txt', str(tmp_path / 'out'), pipeline=[dict(type='LoadHRMRPairFromFile')]
    )
    out = ds[0]
    assert np.array_equal(out['hr_img'], pair['hr_array'][64:128, 64:128])
    assert np.array_equal(out['img'], pair['mr_array'][32:64, 32:64])
    # an offset of half an MR pixel but 1.5 HR pixels: not on the HR grid
    write_geotiff(tmp_path / 'hr_half.tif', hr, crs, transform @ Affine.translation(1.5, 0))
    with pytest.raises(PeraDataError, match=r'hr_half.tif\): the MR origin is at HR pixel'):
        cut_hr_mr_pairs(root / pair['mr'], tmp_path / 'hr_half.tif', tmp_path / 'x', progress=False)


@pytest.mark.needs_shared
def test_cli_help_and_one_line_errors(scenes, tmp_path, load_script, capsys):
    root, pair = scenes
    tool = load_script(TOOL)
    with pytest.raises(SystemExit) as exit_:
        tool.main(['--help'])
    assert exit_.value.code == 0 and 'exit codes' in capsys.readouterr().out
    tool.main(
        [
            str(root / pair['mr']),
            str(root / pair['hr']),
            str(tmp_path / 'ok'),
            '--tile',
            '64',
            '--format',
            'npy',
        ]
    )
    assert '6 pairs of 64 px MR / 128 px HR from 1 scene pair(s)' in capsys.readouterr().out
    assert len((tmp_path / 'ok/pairs.txt').read_text().splitlines()) == 6
    assert np.load(tmp_path / 'ok/hr/bercy_128_64.npy').shape == (128, 128, 4)
    with rasterio.open(root / pair['hr']) as src:
        transform = src.transform
    write_geotiff(tmp_path / 'hr_3857.tif', pair['hr_array'], 'EPSG:3857', transform)
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(root / pair['mr']), str(tmp_path / 'hr_3857.tif'), str(tmp_path / 'bad')])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 4 and '\n' not in err
    assert err.startswith('cut_hr_mr_pairs.py: data error: pair (MR ')
    assert 'the CRS differ (MR EPSG:4326, HR EPSG:3857)' in err
    with pytest.raises(SystemExit) as exit_:
        tool.main([str(tmp_path / 'none.tif'), str(root / pair['hr']), str(tmp_path / 'bad')])
    assert exit_.value.code == 5 and 'the MR scene does not exist' in capsys.readouterr().err
