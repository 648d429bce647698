import cv2
import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS

from pera_mm.datasets.transforms.multi_crop_views import PerAMultiCropViews
from pera_mm.utils.scene_generator import _render_tile

NO_COLOR = dict(jitter_prob=0.0, gray_prob=0.0)


@pytest.fixture(scope='module')
def tile():
    """A structured, colourful 160x200 test image (procedural aerial)."""
    img = _render_tile(np.random.default_rng(5), 'residential', 200)
    return np.ascontiguousarray(img[:160])


def luma(img):
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64)


def corr(a, b):
    a, b = luma(a).ravel(), luma(b).ravel()
    return np.corrcoef(a, b)[0, 1]


def split(out):
    n_g, n_l = out['num_global_crops'], out['num_local_crops']
    v = out['img']
    return (v[:n_g], v[n_g : 2 * n_g], v[2 * n_g : 2 * n_g + n_l], v[2 * n_g + n_l :])


def test_output_order_sizes_and_count(tile):
    np.random.seed(0)
    t = PerAMultiCropViews(
        global_crop_size=64, local_crop_size=32, num_global_crops=2, num_local_crops=8
    )
    out = t(dict(img=tile))
    assert out['num_global_crops'] == 2 and out['num_local_crops'] == 8
    assert isinstance(out['num_global_crops'], int)
    assert len(out['img']) == 20
    for i, view in enumerate(out['img']):
        size = 64 if i < 4 else 32
        assert view.shape == (size, size, 3)
        assert view.dtype == np.uint8
        assert view.flags.c_contiguous


def test_defaults_follow_method_spec():
    """At its defaults the transform makes the method's views: 2 global pairs of 448 px
    over 40-100 % of the image, 8 local pairs of 96 px over 5-40 %, aspect 3/4-4/3,
    each flip half of the time, one box per pair (aligned), and colour on 74 % of
    the student views (jitter 0.72, grey 0.08) but 10 % of the teacher views."""
    img = np.random.RandomState(3).randint(0, 256, (500, 600, 3), np.uint8)
    t = PerAMultiCropViews()
    boxes, changed = [], {'student': [], 'teacher': []}
    sample, photometric = t._sample_geometry, t._photometric

    def spy_sample(height, width, scale):
        geometry = sample(height, width, scale)
        boxes.append(geometry)
        return geometry

    def spy_photometric(view, cfg):
        out = photometric(view, cfg)
        changed['student' if cfg is t.student_color else 'teacher'].append(out is not view)
        return out

    t._sample_geometry, t._photometric = spy_sample, spy_photometric
    np.random.seed(10)
    calls = 25
    for _ in range(calls):
        out = t(dict(img=img))
        assert [v.shape for v in out['img']] == [(448, 448, 3)] * 4 + [(96, 96, 3)] * 16
    assert len(boxes) == calls * 10  # one box per pair: student and teacher aligned
    per_call = np.array([g[:4] for g in boxes], np.float64).reshape(calls, 10, 4)
    area = per_call[..., 2] * per_call[..., 3] / (500 * 600)
    aspect = per_call[..., 3] / per_call[..., 2]
    glob, loc = area[:, :2].ravel(), area[:, 2:].ravel()
    assert 0.4 * 0.99 <= glob.min() < 0.5 and 0.9 < glob.max() <= 1.0
    assert 0.05 * 0.99 <= loc.min() < 0.08 and 0.35 < loc.max() <= 0.4 * 1.01
    assert 0.75 * 0.98 <= aspect.min() and aspect.max() <= 4 / 3 * 1.02
    flips = np.array([g[4:] for g in boxes])
    assert (np.abs(flips.mean(0) - 0.5) < 0.1).all()
    assert abs(np.mean(changed['student']) - (1 - 0.28 * 0.92)) < 0.08
    assert abs(np.mean(changed['teacher']) - 0.1) < 0.06


def test_pairs_identical_without_colour(tile):
    np.random.seed(1)
    t = PerAMultiCropViews(64, 32, 2, 6, student_color=NO_COLOR, teacher_color=NO_COLOR)
    for _ in range(5):
        sg, tg, sl, tl = split(t(dict(img=tile.copy())))
        for s, te in zip(sg + sl, tg + tl):
            assert np.array_equal(s, te)
            assert s is not te  # separate arrays
        # ... while different pairs show different crops.
        assert not np.array_equal(sg[0], sg[1])


def test_pairs_differ_only_photometrically(tile):
    """Student: brightness jitter only; teacher untouched. Then every
    student pixel is the teacher pixel times one factor (up to rounding and
    clipping), i.e. the same crop and flips."""
    np.random.seed(2)
    t = PerAMultiCropViews(
        64,
        32,
        2,
        4,
        student_color=dict(
            jitter_prob=1.0, brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0, gray_prob=0.0
        ),
        teacher_color=NO_COLOR,
    )
    sg, tg, sl, tl = split(t(dict(img=tile)))
    factors = []
    for s, te in zip(sg + sl, tg + tl):
        te_f = te.astype(np.float64)
        ok = (te_f > 20) & (te_f < 150)  # away from rounding and clipping
        f = np.median(s[ok] / te_f[ok])
        expected = np.clip(np.floor(te_f * f + 0.5), 0, 255)
        assert np.abs(s - expected).max() <= 1.0 + 255 * 0.005
        factors.append(f)
    assert min(factors) >= 0.6 - 1e-3 and max(factors) <= 1.4 + 1e-3
    assert np.std(factors) > 0.01  # a new factor per view


def test_default_colour_keeps_structure(tile):
    np.random.seed(3)
    aligned = PerAMultiCropViews(64, 32, 2, 8)
    unaligned = PerAMultiCropViews(64, 32, 2, 8, spatial_alignment=False)
    c_al, c_un, differ = [], [], 0
    for _ in range(10):
        sg, tg, sl, tl = split(aligned(dict(img=tile)))
        for s, te in zip(sg + sl, tg + tl):
            c_al.append(corr(s, te))
            differ += not np.array_equal(s, te)
        sg, tg, sl, tl = split(unaligned(dict(img=tile)))
        c_un += [corr(s, te) for s, te in zip(sg + sl, tg + tl)]
    # Colour is applied (views differ) yet the ground is the same.
    assert differ > 50
    # (Hue shifts change luma, so a few aligned pairs correlate less.)
    assert min(c_al) > 0.7 and np.median(c_al) > 0.95
    assert np.median(c_un) < 0.5


def test_grayscale_student(tile):
    np.random.seed(4)
    t = PerAMultiCropViews(
        64, 32, 2, 2, student_color=dict(jitter_prob=0.0, gray_prob=1.0), teacher_color=NO_COLOR
    )
    sg, tg, sl, tl = split(t(dict(img=tile)))
    for s, te in zip(sg + sl, tg + tl):
        assert (s[..., 0] == s[..., 1]).all()
        assert (s[..., 1] == s[..., 2]).all()
        assert not (te[..., 0] == te[..., 2]).all()
        expected = te.astype(np.float64) @ [0.299, 0.587, 0.114]
        assert np.abs(s[..., 0] - expected).max() <= 1.0


def test_unaligned_pairs_differ_geometrically(tile):
    np.random.seed(5)
    t = PerAMultiCropViews(
        64, 32, 2, 6, student_color=NO_COLOR, teacher_color=NO_COLOR, spatial_alignment=False
    )
    sg, tg, sl, tl = split(t(dict(img=tile)))
    for s, te in zip(sg + sl, tg + tl):
        assert not np.array_equal(s, te)


def test_flips_shared_and_exact():
    img = np.random.RandomState(0).randint(0, 256, (32, 32, 3), np.uint8)
    full = dict(
        global_crop_scale=(1.0, 1.0),
        local_crop_scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        student_color=NO_COLOR,
        teacher_color=NO_COLOR,
    )
    h = PerAMultiCropViews(32, 32, 1, 1, hflip_prob=1.0, vflip_prob=0.0, **full)(dict(img=img))
    for v in h['img']:
        assert np.array_equal(v, img[:, ::-1])
    vv = PerAMultiCropViews(32, 32, 1, 1, hflip_prob=0.0, vflip_prob=1.0, **full)(dict(img=img))
    for v in vv['img']:
        assert np.array_equal(v, img[::-1])
    both = PerAMultiCropViews(32, 32, 1, 1, hflip_prob=1.0, vflip_prob=1.0, **full)(dict(img=img))
    for v in both['img']:
        assert np.array_equal(v, img[::-1, ::-1])
    none = PerAMultiCropViews(32, 32, 1, 1, hflip_prob=0.0, vflip_prob=0.0, **full)(dict(img=img))
    for v in none['img']:
        assert np.array_equal(v, img)
    # p = 0.5: all four flip states occur, always the same in a pair.
    np.random.seed(6)
    t = PerAMultiCropViews(32, 32, 1, 0, **full)
    seen = set()
    for _ in range(60):
        s, te = t(dict(img=img))['img']
        assert np.array_equal(s, te)
        for name, ref in (
            ('id', img),
            ('h', img[:, ::-1]),
            ('v', img[::-1]),
            ('hv', img[::-1, ::-1]),
        ):
            if np.array_equal(s, ref):
                seen.add(name)
    assert seen == {'id', 'h', 'v', 'hv'}


def test_crops_are_windows_of_the_input():
    """scale 0.25, ratio 1 on a 64x64 input gives a 32x32 box: resized to
    32 px it must equal one 32x32 window of the input exactly."""
    img = np.random.RandomState(1).randint(0, 256, (64, 64, 3), np.uint8)
    np.random.seed(7)
    t = PerAMultiCropViews(
        32,
        32,
        2,
        2,
        global_crop_scale=(0.25, 0.25),
        local_crop_scale=(0.25, 0.25),
        ratio=(1.0, 1.0),
        hflip_prob=0.0,
        vflip_prob=0.0,
        student_color=NO_COLOR,
        teacher_color=NO_COLOR,
    )
    windows = {img[i : i + 32, j : j + 32].tobytes(): (i, j) for i in range(33) for j in range(33)}
    boxes = set()
    for v in t(dict(img=img))['img']:
        assert v.tobytes() in windows
        boxes.add(windows[v.tobytes()])
    assert len(boxes) == 4  # one box per pair


def test_upscaling_small_inputs():
    """A 20x30 input is smaller than the crops: a full-area box cannot keep the aspect
    ratio within 3/4-4/3, so the largest centred allowed box (20x27 at column 1) is
    used, and it is enlarged with cubic interpolation."""
    img = np.random.RandomState(2).randint(0, 256, (20, 30, 3), np.uint8)
    np.random.seed(11)
    out = PerAMultiCropViews(
        64,
        32,
        2,
        2,
        global_crop_scale=(1.0, 1.0),
        hflip_prob=0.0,
        vflip_prob=0.0,
        student_color=NO_COLOR,
        teacher_color=NO_COLOR,
    )(dict(img=img))
    assert [v.shape for v in out['img']] == [(64, 64, 3)] * 4 + [(32, 32, 3)] * 4
    expected = cv2.resize(img[0:20, 1:28], (64, 64), interpolation=cv2.INTER_CUBIC)
    for view in out['img'][:4]:
        assert np.array_equal(view, expected)
    # the local boxes are smaller parts of it, enlarged too: smooth, not blocky copies
    for view in out['img'][4:]:
        assert len(np.unique(view.reshape(-1, 3), axis=0)) > 20 * 30


def test_rng_follows_numpy_seed(tile):
    t = PerAMultiCropViews(64, 32, 2, 4)
    np.random.seed(8)
    a = t(dict(img=tile))['img']
    np.random.seed(8)
    b = t(dict(img=tile))['img']
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = t(dict(img=tile))['img']
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_hue_jitter_rotates_hue(tile):
    """Pure hue jitter keeps each pixel's max/min channel spread."""
    np.random.seed(9)
    t = PerAMultiCropViews(
        64,
        32,
        1,
        0,
        student_color=dict(
            jitter_prob=1.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.5, gray_prob=0.0
        ),
        teacher_color=NO_COLOR,
    )
    changed = 0
    for _ in range(5):
        s, te = t(dict(img=tile))['img']
        s16, te16 = s.astype(np.int16), te.astype(np.int16)
        assert np.abs(s16.max(2) - te16.max(2)).max() <= 1
        assert np.abs(s16.min(2) - te16.min(2)).max() <= 1
        changed += not np.array_equal(s, te)
    assert changed >= 4


def test_registry_build_and_repr():
    t = TRANSFORMS.build(
        dict(type='PerAMultiCropViews', global_crop_size=224, student_color=dict(jitter_prob=0.5))
    )
    assert isinstance(t, PerAMultiCropViews)
    # Partial colour dicts are merged over the role's defaults.
    assert t.student_color['jitter_prob'] == 0.5
    assert t.student_color['gray_prob'] == 0.08
    assert 'global_crop_size=224' in repr(t)


@pytest.mark.parametrize(
    'kwargs, field',
    [
        (dict(global_crop_size=0), 'global_crop_size'),
        (dict(local_crop_size=-4), 'local_crop_size'),
        (dict(local_crop_size=32.5), 'local_crop_size'),
        (dict(num_global_crops=0), 'num_global_crops'),
        (dict(num_local_crops=-1), 'num_local_crops'),
        (dict(global_crop_scale=(0.0, 1.0)), 'global_crop_scale'),
        (dict(local_crop_scale=(0.5, 1.2)), 'local_crop_scale'),
        (dict(local_crop_scale=(0.5, 0.2)), 'local_crop_scale'),
        (dict(ratio=(0.0, 1.0)), 'ratio'),
        (dict(hflip_prob=1.5), 'hflip_prob'),
        (dict(vflip_prob=-0.1), 'vflip_prob'),
        (dict(student_color=dict(jitter_prob=2.0)), 'student_color.jitter_prob'),
        (dict(teacher_color=dict(gray_prob=-1)), 'teacher_color.gray_prob'),
        (dict(student_color=dict(hue=0.7)), 'student_color.hue'),
        (dict(student_color=dict(brightness=-0.1)), 'student_color.brightness'),
        (dict(student_color=dict(jiter_prob=0.5)), 'student_color'),
        (dict(spatial_alignment='yes'), 'spatial_alignment'),
    ],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError) as info:
        PerAMultiCropViews(**kwargs)
    assert field in str(info.value)
    assert '\n' not in str(info.value)


@pytest.mark.parametrize(
    'img',
    [
        np.zeros((8, 8), np.uint8),
        np.zeros((8, 8, 3), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        None,
    ],
)
def test_bad_input_image(img):
    with pytest.raises(ValueError, match=r"results\['img'\]"):
        PerAMultiCropViews(32, 16)(dict(img=img))
