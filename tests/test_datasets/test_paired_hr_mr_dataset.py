"""PairedHRMRDataset + LoadHRMRPairFromFile on real Sentinel-2 pixels (OSCD).

The scale is SIMULATED: HR = the OSCD 10 m stack B02/B03/B04/B08, MR = that stack
area-downsampled by 2 (pera_mm.testing.oscd_pairs). The pixels are real.
"""

import numpy as np
import pytest
from affine import Affine

import pera_mm  # noqa: F401  (registration)
from pera_mm.datasets import PairedHRMRDataset
from pera_mm.testing.oscd_pairs import (
    OSCD_IMAGES,
    area_downsample,
    build_oscd_pairs,
    oscd_stack,
    write_geotiff,
)
from pera_mm.utils import PeraDataError
from pera_mm.utils.errors import PeraFileNotFoundError

pytestmark = pytest.mark.needs_shared
rasterio = pytest.importorskip('rasterio')


def dataset(root, num_bands=4, ann='pairs.txt', **load):
    return PairedHRMRDataset(
        ann_file=ann,
        data_root=str(root),
        scale=2,
        pipeline=[dict(type='LoadHRMRPairFromFile', num_bands=num_bands, **load)],
    )


def one_line_error(exc_type, ds, *fragments):
    with pytest.raises(exc_type) as err:
        ds[0]
    msg = str(err.value)
    assert '\n' not in msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


@pytest.fixture(scope='module')
def oscd(shared_path):
    return shared_path('OSCD')


@pytest.mark.parametrize('fmt', ['tif', 'npy'])
def test_pairs_load_with_the_right_shapes_and_values(oscd, tmp_path, fmt):
    ann, pairs = build_oscd_pairs(oscd, tmp_path, scale=2, fmt=fmt)
    ds = dataset(tmp_path)
    assert len(ds) == 2 and ann.read_text().splitlines()[0] == f'mr/bercy.{fmt} hr/bercy.{fmt}'
    # the source: the B02 band file read directly, and the 4-band stack
    (b02,) = (oscd / OSCD_IMAGES / 'bercy' / 'imgs_1').glob('*_B02.tif')
    with rasterio.open(b02) as src:
        band = src.read(1)
    stack, _, _ = oscd_stack(oscd, 'bercy')
    assert stack.shape == (395, 360, 4) and np.array_equal(stack[..., 0], band)
    out = ds[0]
    hr, mr = out['hr_img'], out['img']
    assert out['scale'] == 2 and out['img_path'].endswith(f'mr/bercy.{fmt}')
    assert hr.shape == (394, 360, 4) and hr.dtype == np.uint16  # cropped to even rows
    assert np.array_equal(hr, stack[:394])
    assert mr.shape == (197, 180, 4) and mr.dtype == np.float32
    # MR pixel (u, v) = mean of HR pixels (2u + i, 2v + j), 0 <= i, j < 2 (by hand)
    block = stack[2 * 57 : 2 * 57 + 2, 2 * 91 : 2 * 91 + 2].astype(np.float64)
    assert np.allclose(mr[57, 91], block.mean(axis=(0, 1)))
    assert np.array_equal(mr, area_downsample(stack[:394], 2))
    paris = ds[1]
    assert paris['img'].shape == (204, 195, 4) and paris['hr_img'].shape == (408, 390, 4)


def _write_hr(tmp_path, hr, crs, transform):
    write_geotiff(tmp_path / 'hr/bercy.tif', hr, crs, transform)


def test_hr_one_pixel_off_is_a_one_line_error(oscd, tmp_path):
    _, pairs = build_oscd_pairs(oscd, tmp_path, cities=['bercy'])
    stack, crs, transform = oscd_stack(oscd, 'bercy')
    _write_hr(tmp_path, stack[:394, :359], crs, transform)  # one column short
    msg = one_line_error(
        PeraDataError,
        dataset(tmp_path),
        'mr/bercy.tif',
        'hr/bercy.tif',
        'the HR image is 394x359 but scale 2 x the MR size 197x180 is 394x360',
    )
    assert msg.startswith('pair (MR ')


def test_band_count_mismatch_is_a_one_line_error(oscd, tmp_path):
    build_oscd_pairs(oscd, tmp_path, cities=['bercy'])
    one_line_error(
        PeraDataError,
        dataset(tmp_path, num_bands=3),
        'the MR image has 4 bands, expected num_bands=3',
    )
    stack, crs, transform = oscd_stack(oscd, 'bercy')
    _write_hr(tmp_path, np.ascontiguousarray(stack[:394, :, :3]), crs, transform)
    one_line_error(
        PeraDataError,
        dataset(tmp_path, num_bands=None),
        'hr/bercy.tif',
        'MR image has 4 bands, the HR image 3',
    )


def test_crs_and_geotransform_mismatches_are_one_line_errors(oscd, tmp_path):
    build_oscd_pairs(oscd, tmp_path, cities=['bercy'])
    stack, crs, transform = oscd_stack(oscd, 'bercy')
    hr = stack[:394]
    _write_hr(tmp_path, hr, 'EPSG:3857', transform)
    one_line_error(
        PeraDataError,
        dataset(tmp_path),
        'hr/bercy.tif',
        'the CRS differ (MR EPSG:4326, HR EPSG:3857)',
    )
    _write_hr(tmp_path, hr, crs, transform @ Affine.scale(1.5))  # HR pixel x 2 != MR pixel
    one_line_error(PeraDataError, dataset(tmp_path), 'the geotransforms disagree: HR pixel x size')
    _write_hr(tmp_path, hr, crs, transform @ Affine.translation(1, 0))  # one HR pixel east
    one_line_error(
        PeraDataError,
        dataset(tmp_path),
        'the origins differ: the MR origin is at HR pixel (row 0, col -1)',
    )
    write_geotiff(tmp_path / 'hr/bercy.tif', hr)  # no CRS at all
    one_line_error(PeraDataError, dataset(tmp_path), 'the HR file has no CRS but the other one has')
    # the same file passes with check_georef=False: only sizes and bands are checked
    assert dataset(tmp_path, check_georef=False)[0]['hr_img'].shape == (394, 360, 4)


def test_missing_file_is_a_one_line_error(oscd, tmp_path):
    build_oscd_pairs(oscd, tmp_path, cities=['bercy', 'paris'])
    ds = dataset(tmp_path)
    (tmp_path / 'hr/bercy.tif').unlink()  # vanished after the listing
    one_line_error(PeraFileNotFoundError, ds, 'hr/bercy.tif', 'the HR file does not exist')
    with pytest.raises(PeraFileNotFoundError) as err:  # found when listing
        dataset(tmp_path)
    msg = str(err.value)
    assert '\n' not in msg and 'pairs.txt:1: pair (MR ' in msg
    assert msg.endswith('hr/bercy.tif): the HR file does not exist')
    (tmp_path / 'bad.txt').write_text('# header\n\nmr/paris.tif\n')
    with pytest.raises(PeraDataError, match=r'bad.txt:3: expected "<mr path> <hr path>", got 1'):
        dataset(tmp_path, ann='bad.txt')
    with pytest.raises(PeraFileNotFoundError, match='ann_file .*nothing.txt.* does not exist'):
        dataset(tmp_path, ann='nothing.txt')
