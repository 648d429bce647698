"""Paired crop / flip, the false-HR control, packing and the HR/MR preprocessor.

Real-pixel tests use an HR/MR pair whose scale is SIMULATED: HR = the OSCD 10 m stack
B02/B03/B04/B08, MR = that stack area-downsampled by 2 (pera_mm.testing.oscd_pairs).
"""

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

import pera_mm  # noqa: F401  (registration)
from pera_mm.datasets import PairedHRMRDataset
from pera_mm.testing.oscd_pairs import area_downsample, build_oscd_pairs
from pera_mm.utils import PeraConfigError, PeraDataError

MR_MEAN, MR_STD = [1373.0, 1089.0, 962.0, 1204.0], [184.0, 225.0, 301.0, 512.0]
HR_MEAN, HR_STD = [1000.0, 900.0, 800.0, 2000.0], [100.0, 200.0, 300.0, 400.0]


@pytest.fixture(scope='module')
def pair(shared_path, tmp_path_factory):
    """The loaded bercy pair (MR 197 x 180, HR 394 x 360) and its source arrays."""
    root = tmp_path_factory.mktemp('oscd_pairs')
    _, pairs = build_oscd_pairs(shared_path('OSCD'), root, cities=['bercy'])
    ds = PairedHRMRDataset(
        'pairs.txt', str(root), pipeline=[dict(type='LoadHRMRPairFromFile', num_bands=4)]
    )
    return ds[0], pairs[0]['mr_array'], pairs[0]['hr_array']


def fresh(results):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in results.items()}


@pytest.mark.needs_shared
def test_crop_is_the_same_ground_window_on_the_patch_grid(pair):
    loaded, mr_src, hr_src = pair
    crop = TRANSFORMS.build(dict(type='PairedRandomCrop', crop_size=64, patch_size=16))
    np.random.seed(0)
    offsets = set()
    for _ in range(8):
        out = crop(fresh(loaded))
        y0, x0, y1, x1 = out['crop_box']
        offsets.add((y0, x0))
        assert y0 % 16 == 0 and x0 % 16 == 0 and (y1 - y0, x1 - x0) == (64, 64)
        assert y1 <= 197 and x1 <= 180
        assert out['hr_crop_box'] == (2 * y0, 2 * x0, 2 * y1, 2 * x1)
        assert out['img'].shape == (64, 64, 4) and out['hr_img'].shape == (128, 128, 4)
        assert np.array_equal(out['img'], mr_src[y0:y1, x0:x1])
        assert np.array_equal(out['hr_img'], hr_src[2 * y0 : 2 * y1, 2 * x0 : 2 * x1])
        # the same ground: the HR crop area-downsampled is the MR crop
        assert np.array_equal(area_downsample(out['hr_img'], 2), out['img'])
        # MR patch (u, v) <-> HR patches (2u + i, 2v + j): patch (1, 2) by hand
        hr_cell = out['hr_img'][32:64, 64:96].astype(np.float64)
        assert np.allclose(
            out['img'][16:32, 32:48], hr_cell.reshape(16, 2, 16, 2, 4).mean(axis=(1, 3))
        )
    assert len(offsets) > 1  # random
    with pytest.raises(PeraConfigError, match='crop_size \\(60, 60\\) is not a multiple of'):
        TRANSFORMS.build(dict(type='PairedRandomCrop', crop_size=60, patch_size=16))
    too_big = TRANSFORMS.build(dict(type='PairedRandomCrop', crop_size=208, patch_size=16))
    with pytest.raises(PeraDataError, match=r'bercy.tif\): the MR image \(197x180\) is smaller'):
        too_big(fresh(loaded))


@pytest.mark.needs_shared
def test_flips_agree_on_both_images(pair):
    loaded, mr_src, hr_src = pair
    both = TRANSFORMS.build(
        dict(type='PairedRandomFlip', prob=1.0, direction=['horizontal', 'vertical'])
    )
    out = both(fresh(loaded))
    assert out['flip'] and out['flip_direction'] == ['horizontal', 'vertical']
    assert np.array_equal(out['img'], mr_src[::-1, ::-1])
    assert np.array_equal(out['hr_img'], hr_src[::-1, ::-1])
    np.random.seed(3)
    half = TRANSFORMS.build(dict(type='PairedRandomFlip', prob=0.5, direction='horizontal'))
    seen = set()
    for _ in range(8):
        out = half(fresh(loaded))
        seen.add(out['flip'])
        expect_mr = mr_src[:, ::-1] if out['flip'] else mr_src
        expect_hr = hr_src[:, ::-1] if out['flip'] else hr_src
        assert np.array_equal(out['img'], expect_mr) and np.array_equal(out['hr_img'], expect_hr)
        assert np.array_equal(area_downsample(out['hr_img'], 2), out['img'])
    assert seen == {True, False}


@pytest.mark.needs_shared
def test_false_hr_is_the_interpolated_mr(pair):
    loaded, mr_src, _ = pair
    out = TRANSFORMS.build(dict(type='FalseHRFromMR', mode='nearest'))(fresh(loaded))
    assert out['false_hr'] == 'nearest' and out['hr_img'].dtype == np.float32
    assert np.array_equal(out['hr_img'], np.repeat(np.repeat(mr_src, 2, 0), 2, 1))
    bicubic = TRANSFORMS.build(dict(type='FalseHRFromMR'))(fresh(loaded))['hr_img']
    assert bicubic.shape == (394, 360, 4)
    assert not np.array_equal(bicubic, out['hr_img'])


def test_false_hr_modes_by_hand():
    # one row 0, 4, 8, 12: HR pixel centres (i + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, ...
    mr = np.array([0.0, 4.0, 8.0, 12.0], np.float32).reshape(1, 4, 1)
    res = dict(img=mr, scale=2)
    bilinear = TRANSFORMS.build(dict(type='FalseHRFromMR', mode='bilinear'))(dict(res))
    assert np.allclose(bilinear['hr_img'][0, :, 0], [0, 1, 3, 5, 7, 9, 11, 12])
    assert np.allclose(bilinear['hr_img'][1], bilinear['hr_img'][0])
    bicubic = TRANSFORMS.build(dict(type='FalseHRFromMR', mode='bicubic'))(dict(res))['hr_img']
    # Keys' cubic kernel with A = -0.75 (PyTorch's): W(0.25) = 0.87890625, W(0.75) = 0.26171875,
    # W(1.25) = -0.10546875, W(1.75) = -0.03515625; x = 1.25 -> taps 0, 1, 2, 3 (by hand):
    assert bicubic[0, 3, 0] == pytest.approx(4 * 0.87890625 + 8 * 0.26171875 - 12 * 0.03515625)
    assert bicubic[0, 3, 0] == pytest.approx(5.1875)  # not the linear 5: the modes differ
    # x = -0.25 -> taps -2, -1, 0, 1, clamped to 0, 0, 0, 1: overshoots below the MR range
    assert bicubic[0, 0, 0] == pytest.approx(4 * -0.10546875)
    with pytest.raises(PeraConfigError, match='mode must be one of'):
        TRANSFORMS.build(dict(type='FalseHRFromMR', mode='area'))


def _packed(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    pack = TRANSFORMS.build(dict(type='PackHRMRInputs'))
    items = []
    for i in range(n):
        mr = torch.randint(0, 5000, (8, 6, 4), generator=g).numpy().astype(np.uint16)
        hr = torch.randint(0, 5000, (16, 12, 4), generator=g).numpy().astype(np.uint16)
        items.append(
            pack(
                dict(img=mr, hr_img=hr, scale=2, img_path=f'mr/{i}.tif', hr_img_path=f'hr/{i}.tif')
            )
        )
    return items


def test_pack_hr_mr_inputs():
    (item, _) = _packed()
    mr, hr = item['inputs']
    assert mr.shape == (4, 8, 6) and hr.shape == (4, 16, 12) and mr.dtype == torch.uint16
    sample = item['data_samples']
    assert isinstance(sample, DataSample) and sample.scale == 2
    assert sample.img_path == 'mr/0.tif' and sample.hr_img_path == 'hr/0.tif'
    assert 'crop_box' not in sample  # only keys present in the results


@pytest.mark.parametrize('collate', [default_collate, pseudo_collate])
def test_preprocessor_normalises_each_band_with_its_stats(collate):
    items = _packed()
    pre = MODELS.build(
        dict(
            type='HRMRDataPreProcessor',
            num_bands=4,
            mean=MR_MEAN,
            std=MR_STD,
            hr_mean=HR_MEAN,
            hr_std=HR_STD,
        )
    )
    out = pre(collate(items))
    mr, hr = out['inputs']
    assert mr.shape == (2, 4, 8, 6) and hr.shape == (2, 4, 16, 12) and mr.dtype == torch.float32
    raw_mr = torch.stack([i['inputs'][0] for i in items]).int().float()
    raw_hr = torch.stack([i['inputs'][1] for i in items]).int().float()
    # by hand, band 3 of image 1 at one pixel
    assert mr[1, 3, 2, 5].item() == pytest.approx((raw_mr[1, 3, 2, 5].item() - 1204) / 512)
    assert hr[1, 3, 9, 1].item() == pytest.approx((raw_hr[1, 3, 9, 1].item() - 2000) / 400)
    m, s = torch.tensor(MR_MEAN).view(4, 1, 1), torch.tensor(MR_STD).view(4, 1, 1)
    assert torch.allclose(mr, (raw_mr - m) / s)
    hm, hs = torch.tensor(HR_MEAN).view(4, 1, 1), torch.tensor(HR_STD).view(4, 1, 1)
    assert torch.allclose(hr, (raw_hr - hm) / hs)
    # HR statistics default to the MR ones; pixel scales apply before the statistics
    same = MODELS.build(
        dict(type='HRMRDataPreProcessor', num_bands=4, mean=MR_MEAN, std=MR_STD, hr_pixel_scale=2)
    )
    _, hr_default = same(collate(items))['inputs']
    assert torch.allclose(hr_default, (raw_hr / 2 - m) / s)


def test_preprocessor_errors_are_one_line():
    pre = MODELS.build(dict(type='HRMRDataPreProcessor', num_bands=4, mean=MR_MEAN, std=MR_STD))
    items = _packed()
    batch = default_collate(items)
    batch['inputs'][1] = batch['inputs'][1][..., :-2]  # HR 16 x 10: not 2 x (8 x 6)
    with pytest.raises(PeraDataError) as err:
        pre(batch)
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith('mr/0.tif: HR batch (2, 4, 16, 10) is not scale 2 x')
    batch = default_collate(items)
    batch['inputs'][0] = batch['inputs'][0][:, :3]
    with pytest.raises(PeraDataError, match='mr/0.tif: the batch has 3 bands'):
        pre(batch)
    with pytest.raises(PeraDataError, match=r'expects inputs=\[mr, hr\]'):
        pre(dict(inputs=torch.zeros(2, 4, 8, 6), data_samples=None))
    with pytest.raises(PeraConfigError, match='give both hr_mean and hr_std'):
        MODELS.build(
            dict(
                type='HRMRDataPreProcessor', num_bands=4, mean=MR_MEAN, std=MR_STD, hr_mean=[0] * 4
            )
        )
    with pytest.raises(PeraConfigError, match='HRMRDataPreProcessor: hr_mean has 3 values'):
        MODELS.build(
            dict(
                type='HRMRDataPreProcessor',
                num_bands=4,
                mean=MR_MEAN,
                std=MR_STD,
                hr_mean=[0] * 3,
                hr_std=[1] * 3,
            )
        )


@pytest.mark.needs_shared
def test_pipeline_collate_and_preprocessor_end_to_end(shared_path, tmp_path):
    """Dataset -> load, crop, flip, pack -> default_collate -> HRMRDataPreProcessor."""
    _, pairs = build_oscd_pairs(shared_path('OSCD'), tmp_path, fmt='npy')
    ds = PairedHRMRDataset(
        'pairs.txt',
        str(tmp_path),
        scale=2,
        pipeline=[
            dict(type='LoadHRMRPairFromFile', num_bands=4),
            dict(type='PairedRandomCrop', crop_size=32, patch_size=16),
            dict(type='PairedRandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
            dict(type='PackHRMRInputs'),
        ],
    )
    pre = MODELS.build(
        dict(
            type='HRMRDataPreProcessor',
            num_bands=4,
            mean=MR_MEAN,
            std=MR_STD,
            hr_mean=HR_MEAN,
            hr_std=HR_STD,
        )
    )
    np.random.seed(1)
    out = pre(default_collate([ds[0], ds[1]]))
    mr, hr = out['inputs']
    assert mr.shape == (2, 4, 32, 32) and hr.shape == (2, 4, 64, 64)
    for b, sample in enumerate(out['data_samples']):
        assert sample.scale == 2 and sample.hr_crop_box == tuple(2 * v for v in sample.crop_box)
        y0, x0, y1, x1 = sample.crop_box
        src = pairs[b]['mr_array'][y0:y1, x0:x1]
        for d in sample.flip_direction:
            src = src[:, ::-1] if d == 'horizontal' else src[::-1]
        m, s = np.array(MR_MEAN), np.array(MR_STD)
        expected = torch.from_numpy(((src - m) / s).transpose(2, 0, 1).astype(np.float32))
        assert torch.allclose(mr[b], expected, atol=1e-5)
        # de-normalised HR, area-downsampled, is the MR crop: the same ground window
        hr_raw = hr[b].numpy().transpose(1, 2, 0) * np.array(HR_STD) + np.array(HR_MEAN)
        assert np.allclose(area_downsample(hr_raw, 2), src, atol=0.05)
