"""Bi-temporal loading and augmentation: one geometric draw for both dates and the label
(pixel-exact), colour changes per date only when asked, and one-line errors on bad input."""

import random

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope
from PIL import Image

import pera_mm  # noqa: F401  (registers the transforms)
from pera_mm.datasets.transforms import (
    BitemporalColorJitter,
    BitemporalRandomFlip,
    BitemporalRandomResizedCrop,
    BitemporalRandomRotate90,
    LoadBitemporalImagesFromFile,
    LoadChangeLabelFromFile,
)
from pera_mm.utils.errors import PeraConfigError, PeraDataError


def _write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def pair_files(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    label = (rng.random((48, 80)) > 0.7).astype(np.uint8) * 255
    return dict(
        img_path=_write(tmp_path / 'a.png', a),
        img_path_b=_write(tmp_path / 'b.png', b),
        seg_map_path=_write(tmp_path / 'label.png', label),
        arrays=(a, b, label),
    )


def _load(pair_files):
    results = {k: v for k, v in pair_files.items() if k != 'arrays'}
    results = LoadBitemporalImagesFromFile()(results)
    return LoadChangeLabelFromFile()(results)


def test_loading_stacks_dates_and_converts_labels(pair_files):
    a, b, label = pair_files['arrays']
    results = _load(pair_files)
    assert results['img'].shape == (48, 80, 6) and results['img'].dtype == np.uint8
    np.testing.assert_array_equal(results['img'][..., :3], a)  # RGB, date A first
    np.testing.assert_array_equal(results['img'][..., 3:], b)
    np.testing.assert_array_equal(results['gt_seg_map'], label // 255)
    assert set(np.unique(results['gt_seg_map'])) == {0, 1}
    assert results['seg_fields'] == ['gt_seg_map'] and results['ori_shape'] == (48, 80)


def _replay(array, flips, k, box, size, nearest):
    """The augmentation of ONE date (or the label) alone, from the recorded draw."""
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(array[y0:y1, x0:x1])
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    out = cv2.resize(crop, (size[1], size[0]), interpolation=interp)
    for direction in flips:
        out = np.flip(out, 1 if direction == 'horizontal' else 0)
    return np.rot90(out, k, (0, 1)) if k else out


@pytest.mark.parametrize('seed', range(6))
def test_same_geometric_transform_on_both_dates_and_label(pair_files, seed):
    random.seed(seed)
    a, b, label = pair_files['arrays']
    size = (32, 40)
    pipeline = Compose(
        [
            BitemporalRandomResizedCrop(size=size, scale=(0.3, 1.0)),
            BitemporalRandomFlip(prob=0.5),
            BitemporalRandomRotate90(prob=0.75),
        ]
    )
    out = pipeline(_load(pair_files))
    flips, k, box = out['bitemporal_flips'], out['bitemporal_rot90'], out['bitemporal_crop_box']
    np.testing.assert_array_equal(out['img'][..., :3], _replay(a, flips, k, box, size, False))
    np.testing.assert_array_equal(out['img'][..., 3:], _replay(b, flips, k, box, size, False))
    np.testing.assert_array_equal(
        out['gt_seg_map'], _replay(label // 255, flips, k, box, size, True)
    )
    expected_hw = size[::-1] if k % 2 else size
    assert out['img'].shape[:2] == expected_hw == out['gt_seg_map'].shape
    assert out['img_shape'] == expected_hw


def test_flip_and_rotation_keep_pixel_correspondence():
    """Coordinate images: after any flip/rotation B still equals 255 - A pixel by pixel and
    the label is still the function of (x, y) it was built from."""
    y, x = np.mgrid[0:64, 0:64].astype(np.uint8)
    a = np.stack([x, y, np.zeros_like(x)], axis=2)
    results = dict(
        img=np.concatenate([a, 255 - a], axis=2),
        gt_seg_map=((x // 8 + y // 8) % 2).astype(np.uint8),
        seg_fields=['gt_seg_map'],
    )
    seen = set()
    for seed in range(20):
        random.seed(seed)
        out = Compose([BitemporalRandomFlip(prob=0.5), BitemporalRandomRotate90(prob=0.75)])(
            {k: (v.copy() if isinstance(v, np.ndarray) else list(v)) for k, v in results.items()}
        )
        img_a, img_b = out['img'][..., :3], out['img'][..., 3:]
        np.testing.assert_array_equal(img_b, 255 - img_a)
        ox, oy = img_a[..., 0].astype(int), img_a[..., 1].astype(int)
        np.testing.assert_array_equal(out['gt_seg_map'], (ox // 8 + oy // 8) % 2)
        seen.add((tuple(out['bitemporal_flips']), out['bitemporal_rot90']))
    assert len(seen) > 4  # the draws really varied


def test_colour_jitter_per_date_only_when_asked(pair_files):
    results = _load(pair_files)
    random.seed(3)
    per_date = BitemporalColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)(
        dict(results, img=results['img'].copy())
    )
    fa, fb = per_date['bitemporal_color_factors']
    assert fa != fb
    random.seed(3)
    shared = BitemporalColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, per_date=False)(
        dict(results, img=results['img'].copy())
    )
    fa, fb = shared['bitemporal_color_factors']
    assert fa == fb
    # the same draw applied to a date alone gives the same pixels
    date_a = BitemporalColorJitter._jitter(results['img'][..., :3], fa)
    np.testing.assert_array_equal(shared['img'][..., :3], date_a)
    assert not np.array_equal(shared['img'][..., :3], results['img'][..., :3])


def test_label_with_other_values_is_one_line_error_naming_file(pair_files, tmp_path):
    bad = np.zeros((48, 80), np.uint8)
    bad[0, :3] = [1, 128, 255]
    path = _write(tmp_path / 'bad_label.png', bad)
    with pytest.raises(PeraDataError) as err:
        _load(dict(pair_files, seg_map_path=path))
    message = str(err.value)
    assert 'bad_label.png' in message and '[1, 128]' in message and '\n' not in message


def test_size_mismatch_is_one_line_error_naming_pair(pair_files, tmp_path):
    small = _write(tmp_path / 'b_small.png', np.zeros((40, 80, 3), np.uint8))
    with pytest.raises(PeraDataError) as err:
        _load(dict(pair_files, img_path_b=small))
    message = str(err.value)
    assert 'a.png' in message and 'b_small.png' in message and '\n' not in message
    small_label = _write(tmp_path / 'l_small.png', np.zeros((40, 80), np.uint8))
    with pytest.raises(PeraDataError, match='l_small.png'):
        _load(dict(pair_files, seg_map_path=small_label))


@pytest.mark.needs_shared
def test_real_levir_pair_through_the_train_pipeline(shared_path):
    """A real LEVIR-CD pair through the smoke config's training transforms, replayed per date."""
    root = shared_path('LEVIR-CD')
    init_default_scope('mmseg')
    name = 'test_102_0512_0000.png'
    results = dict(
        img_path=str(root / 'A' / name),
        img_path_b=str(root / 'B' / name),
        seg_map_path=str(root / 'label' / name),
    )
    random.seed(11)
    pipeline = Compose(
        [
            dict(type='LoadBitemporalImagesFromFile'),
            dict(type='LoadChangeLabelFromFile'),
            dict(type='BitemporalRandomResizedCrop', size=(64, 64), scale=(0.25, 1.0)),
            dict(type='BitemporalRandomFlip', prob=0.5),
        ]
    )
    out = pipeline(dict(results))
    a = np.asarray(Image.open(results['img_path']).convert('RGB'))
    b = np.asarray(Image.open(results['img_path_b']).convert('RGB'))
    label = np.asarray(Image.open(results['seg_map_path'])) // 255
    flips, box = out['bitemporal_flips'], out['bitemporal_crop_box']
    np.testing.assert_array_equal(out['img'][..., :3], _replay(a, flips, 0, box, (64, 64), False))
    np.testing.assert_array_equal(out['img'][..., 3:], _replay(b, flips, 0, box, (64, 64), False))
    np.testing.assert_array_equal(out['gt_seg_map'], _replay(label, flips, 0, box, (64, 64), True))
    assert out['gt_seg_map'].any()  # this crop has changed pixels


def test_corrupt_geotiff_is_one_line_error_naming_file(tmp_path):
    pytest.importorskip('rasterio')
    from pera_mm.datasets.transforms.bitemporal_loading import read_raster

    bad = tmp_path / 'date_a.tif'
    bad.write_bytes(b'not a tiff' * 20)
    with pytest.raises(PeraDataError, match='date_a.tif') as err:
        read_raster(str(bad))
    assert '\n' not in str(err.value)


@pytest.mark.parametrize('dtype,bands', [(np.uint16, 3), (np.uint8, 4)])
def test_colour_transforms_reject_non_8bit_rgb_before_any_draw(dtype, bands):
    from pera_mm.datasets.transforms import BitemporalGaussianBlur

    img = np.zeros((8, 8, 2 * bands), dtype)
    # prob=0 draws nothing, and the sample is still rejected
    for t in (BitemporalColorJitter(prob=0.0), BitemporalGaussianBlur(prob=0.0)):
        with pytest.raises(PeraConfigError, match='8-bit 3-band') as err:
            t(dict(img=img.copy()))
        assert '\n' not in str(err.value)
