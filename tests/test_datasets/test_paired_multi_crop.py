"""PairedPerAMultiCropViews + PackPerAViewsWithHR: PerA's views and the HR global crops.

Real Sentinel-2 pixels, SIMULATED scale: HR = an OSCD 10 m B2/B3/B4/B8 window, MR = it
area-downsampled x2 (``pera_mm.testing.oscd_pairs``).
"""

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS

from pera_mm.testing.oscd_pairs import area_downsample, oscd_stack
from pera_mm.utils.errors import PeraConfigError, PeraDataError

G, S = 32, 2  # global crop side (MR px), scale
OFF = dict(jitter_prob=0.0, gray_prob=0.0)


@pytest.fixture(scope='module')
def pair(shared_path):
    stack, _, _ = oscd_stack(shared_path('OSCD'), 'paris')
    hr = np.ascontiguousarray(stack[:192, :256].astype(np.float32))  # (192, 256, 4) DN
    return area_downsample(hr, S), hr  # MR (96, 128, 4)


def _views(**kwargs):
    cfg = dict(
        type='PairedPerAMultiCropViews',
        num_bands=4,
        global_crop_size=G,
        local_crop_size=16,
        num_global_crops=2,
        num_local_crops=3,
        student_color=OFF,
        teacher_color=OFF,
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return TRANSFORMS.build({**cfg, **kwargs})


def _exact_box(mr, side):
    """Crop-scale range whose random-resized box is exactly side x side px of ``mr``."""
    a = side * side / (mr.shape[0] * mr.shape[1])
    return dict(global_crop_scale=(a, a), ratio=(1.0, 1.0))


def _flip(x, hflip, vflip):
    x = x[:, ::-1] if hflip else x
    return x[::-1] if vflip else x


def _run(t, mr, hr, seed=0):
    np.random.seed(seed)
    return t(dict(img=mr.copy(), hr_img=hr.copy(), scale=S, img_path='mr.npy'))


@pytest.mark.needs_shared
def test_unresized_crops_are_the_same_ground_window_of_the_sources(pair):
    mr, hr = pair
    t = _views(**_exact_box(mr, G), hflip_prob=0.5, vflip_prob=0.5)
    seen_flips = set()
    for seed in range(6):
        out = _run(t, mr, hr, seed)
        views, hr_views = out['img'], out['hr_views']
        assert len(views) == 2 * (2 + 3) and len(hr_views) == 2
        for k, (top, left, h, w, hf, vf) in enumerate(out['global_crop_boxes']):
            assert (h, w) == (G, G)
            seen_flips.add((hf, vf))
            src_mr = mr[top : top + G, left : left + G]
            src_hr = hr[S * top : S * (top + G), S * left : S * (left + G)]
            np.testing.assert_array_equal(views[k], _flip(src_mr, hf, vf))  # student
            np.testing.assert_array_equal(views[2 + k], views[k])  # teacher: colour off
            np.testing.assert_array_equal(hr_views[k], _flip(src_hr, hf, vf))
            assert out['hr_global_crop_boxes'][k] == (S * top, S * left, S * G, S * G, hf, vf)
            # the same ground, without the recorded box: HR area-downsampled is the MR view
            np.testing.assert_allclose(area_downsample(hr_views[k], S), views[k], rtol=1e-6)
    assert len(seen_flips) > 1


@pytest.mark.needs_shared
def test_resized_crops_stay_co_registered(pair):
    mr, hr = pair
    # a 2G MR box rendered to G (area, factor 2) and its 4G HR box rendered to 2G
    t = _views(**_exact_box(mr, 2 * G))
    out = _run(t, mr, hr, seed=3)
    for k, (top, left, h, w, hf, vf) in enumerate(out['global_crop_boxes']):
        assert (h, w) == (2 * G, 2 * G)
        mr_view, hr_view = out['img'][k], out['hr_views'][k]
        assert mr_view.shape == (G, G, 4) and hr_view.shape == (S * G, S * G, 4)
        expect = _flip(area_downsample(mr[top : top + h, left : left + w], 2), hf, vf)
        np.testing.assert_allclose(mr_view, expect, rtol=1e-5)
        np.testing.assert_allclose(area_downsample(hr_view, S), mr_view, rtol=1e-5)


@pytest.mark.needs_shared
def test_unaligned_teacher_keeps_the_hr_crop_on_the_student_box(pair):
    mr, hr = pair
    out = _run(_views(**_exact_box(mr, G), spatial_alignment=False), mr, hr, seed=1)
    for k in range(2):
        np.testing.assert_allclose(area_downsample(out['hr_views'][k], S), out['img'][k], rtol=1e-6)


@pytest.mark.needs_shared
def test_packed_order_is_what_pera_reads(pair):
    mr, hr = pair
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        masks = TRANSFORMS.build(
            dict(type='DisjointMaskGenerator', patch_size=8, mask_ratios=(0.2, 0.2, 0.6))
        )
        pack = TRANSFORMS.build(
            dict(type='PackPerAViewsWithHR', algorithm_keys=['global_masks', 'local_masks'])
        )
    t = _views()
    samples = [pack(masks(_run(t, mr, hr, seed))) for seed in (0, 1)]
    views = _run(t, mr, hr, 1)
    packed = samples[1]['inputs']
    assert len(packed) == 2 * (2 + 3) + 2
    for got, want in zip(packed, views['img'] + views['hr_views']):
        assert torch.equal(got, torch.from_numpy(want.transpose(2, 0, 1).copy()))
    batch = default_collate(samples)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pre = MODELS.build(
            dict(
                type='MultiBandDataPreProcessor',
                num_bands=4,
                pixel_scale=10000,
                mean=[0.1373, 0.1089, 0.0962, 0.1204],
                std=[0.0184, 0.0225, 0.0301, 0.0512],
            )
        )
        data = pre(batch, training=True)
        vit = dict(
            type='PerAViT',
            arch=dict(embed_dims=48, num_layers=2, num_heads=2, feedforward_channels=96),
            img_size=G,
            patch_size=8,
            in_channels=4,
        )
        torch.manual_seed(0)
        model = MODELS.build(
            dict(
                type='PerA',
                backbone=vit,
                projector=dict(
                    type='PerADINOHead', out_channels=64, hidden_channels=32, bottleneck_channels=16
                ),
                predictor=dict(
                    type='PixelPredictionHead', hidden_channels=32, bottleneck_channels=16
                ),
                cls_loss=dict(type='DINOClsLoss', student_temp=0.1, center_momentum=0.9),
                pixel_loss=dict(type='PixelMSELoss', loss_weight=0.01, reduction='patch_sum'),
                spatial_affinity=dict(loss_weight=1.0),
            )
        )
    model.init_weights()
    inputs = data['inputs']
    assert [tuple(x.shape) for x in inputs[-2:]] == [(2, 4, S * G, S * G)] * 2
    assert [tuple(x.shape[-2:]) for x in inputs[:4]] == [(G, G)] * 4
    losses = model.loss(inputs, data['data_samples'])
    assert torch.isfinite(losses['loss_spatial_affinity']) and losses['monitor_sa_gram'] > 0
    # the same batch without its HR crops is rejected, naming what is missing
    with pytest.raises(PeraDataError, match='2 HR global crops'):
        model.loss(inputs[:-2], data['data_samples'])


def test_rgb_colour_on_four_bands_is_a_one_line_error():
    with pytest.raises(PeraConfigError) as info:
        _views(student_color=None)  # PerA's default student jitter 0.72
    msg = str(info.value)
    assert '\n' not in msg and 'student_color.jitter_prob is 0.72' in msg and '4 bands' in msg
    # without num_bands the same check runs on the first image
    t = _views(num_bands=None, teacher_color=dict(OFF, gray_prob=0.1))
    img = np.zeros((64, 64, 4), np.float32)
    with pytest.raises(PeraConfigError, match=r'teacher_color.gray_prob is 0.1 .* 4 bands'):
        t(dict(img=img, hr_img=np.zeros((128, 128, 4), np.float32), scale=2))


def test_rgb_colour_applies_to_mr_views_only():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    mr = hr[::2, ::2].copy()
    jitter = dict(jitter_prob=1.0, gray_prob=0.0)
    t = _views(
        num_bands=3, student_color=jitter, teacher_color=OFF, **_exact_box(mr, G), vflip_prob=0.0
    )
    out = _run(t, mr, hr)
    for k, (top, left, _, _, hf, _) in enumerate(out['global_crop_boxes']):
        src_mr = _flip(mr[top : top + G, left : left + G], hf, False)
        assert not np.array_equal(out['img'][k], src_mr)  # student jittered
        np.testing.assert_array_equal(out['img'][2 + k], src_mr)  # teacher untouched
        src_hr = _flip(hr[S * top : S * (top + G), S * left : S * (left + G)], hf, False)
        np.testing.assert_array_equal(out['hr_views'][k], src_hr)  # HR never augmented


def test_bad_pairs_are_one_line_errors():
    t = _views()
    mr = np.zeros((64, 64, 4), np.float32)
    with pytest.raises(PeraDataError, match=r'scale 2 x the MR size .* HR \(127, 128, 4\)'):
        t(dict(img=mr, hr_img=np.zeros((127, 128, 4), np.float32), scale=2, img_path='a.npy'))
    with pytest.raises(PeraDataError, match='3 bands, expected num_bands=4'):
        t(dict(img=mr[..., :3], hr_img=np.zeros((128, 128, 3), np.float32), scale=2))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pack = TRANSFORMS.build(dict(type='PackPerAViewsWithHR'))
    views = _views(with_hr=False)(dict(img=mr))
    assert 'hr_views' not in views
    with pytest.raises(PeraConfigError, match=r"needs results\['hr_views'\]"):
        pack(views)
