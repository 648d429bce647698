import io
import pickle

import numpy as np
import pytest
from mmpretrain.registry import TRANSFORMS
from PIL import Image, ImageFile

from pera_mm.datasets.transforms.loading import LoadRGBImageFromFile, UnreadableImageError


def rgb_noise(h=48, w=40, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (h, w, 3), np.uint8)


def load(path):
    return LoadRGBImageFromFile()(dict(img_path=str(path)))


def test_rgb_png_exact(tmp_path):
    arr = rgb_noise()
    Image.fromarray(arr).save(tmp_path / 'a.png')
    out = load(tmp_path / 'a.png')
    assert out['img'].dtype == np.uint8
    assert np.array_equal(out['img'], arr)  # RGB order, lossless
    assert out['img_shape'] == (48, 40) and out['ori_shape'] == (48, 40)
    # A normal, writable array (later transforms may work in place).
    assert out['img'].flags.writeable and out['img'].flags.c_contiguous


def test_jpeg_is_rgb_not_bgr(tmp_path):
    arr = np.zeros((32, 32, 3), np.uint8)
    arr[..., 0] = 220  # pure-ish red
    Image.fromarray(arr).save(tmp_path / 'red.jpg', quality=95)
    img = load(tmp_path / 'red.jpg')['img']
    assert img[..., 0].mean() > 200 and img[..., 2].mean() < 20


def test_grayscale_png(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey, mode='L').save(tmp_path / 'g.png')
    img = load(tmp_path / 'g.png')['img']
    assert img.shape == (16, 16, 3)
    for c in range(3):
        assert np.array_equal(img[..., c], grey)


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.concatenate([rgb_noise(20, 24), np.full((20, 24, 1), 7, np.uint8)], 2)
    Image.fromarray(rgba, mode='RGBA').save(tmp_path / 'a.png')
    img = load(tmp_path / 'a.png')['img']
    assert np.array_equal(img, rgba[..., :3])


def test_palette_png(tmp_path):
    palette = np.random.RandomState(3).randint(0, 256, (256, 3), np.uint8)
    idx = np.random.RandomState(4).randint(0, 256, (12, 10)).astype(np.uint8)
    pimg = Image.fromarray(idx, mode='P')
    pimg.putpalette(palette.ravel().tolist())
    pimg.save(tmp_path / 'p.png')
    img = load(tmp_path / 'p.png')['img']
    assert np.array_equal(img, palette[idx])

    # With a transparent palette entry the colours are still kept.
    pimg.save(tmp_path / 'pt.png', transparency=0)
    assert np.array_equal(load(tmp_path / 'pt.png')['img'], palette[idx])


def test_la_png(tmp_path):
    la = np.stack(
        [np.arange(64, dtype=np.uint8).reshape(8, 8) * 3, np.full((8, 8), 100, np.uint8)], 2
    )
    Image.fromarray(la, mode='LA').save(tmp_path / 'la.png')
    img = load(tmp_path / 'la.png')['img']
    assert np.array_equal(img, np.repeat(la[..., :1], 3, 2))


def test_16bit_png(tmp_path):
    values = np.array([[0, 257, 65535], [32896, 1000, 60000]], np.uint16)
    Image.fromarray(values).save(tmp_path / 'd.png')
    assert Image.open(tmp_path / 'd.png').mode.startswith('I')
    img = load(tmp_path / 'd.png')['img']
    expected = np.floor(values / 257.0 + 0.5).astype(np.uint8)
    assert np.array_equal(img[..., 0], expected)
    assert np.array_equal(img[..., 2], expected)
    assert expected.tolist() == [[0, 1, 255], [128, 4, 233]]


def test_truncated_jpeg_fails(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(rgb_noise(64, 64)).save(buf, 'JPEG', quality=90)
    data = buf.getvalue()
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError) as info:
        load(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, OSError)

    # Even when someone enabled Pillow's lenient mode globally.
    old = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(UnreadableImageError):
            load(path)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = old


@pytest.mark.parametrize(
    'content, reason',
    [
        (b'', 'empty'),
        (b'this is not an image at all' * 10, 'UnidentifiedImageError'),
        (b'\x89PNG\r\n\x1a\n' + b'\x00' * 40, ''),
    ],
)
def test_garbage_fails(tmp_path, content, reason):
    path = tmp_path / 'bad.png'
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError) as info:
        load(path)
    assert reason in info.value.reason


def test_missing_file_fails(tmp_path):
    with pytest.raises(UnreadableImageError, match='missing.jpg'):
        load(tmp_path / 'missing.jpg')


def test_error_pickles():
    err = pickle.loads(pickle.dumps(UnreadableImageError('/x/y.jpg', 'bad')))
    assert (err.path, err.reason) == ('/x/y.jpg', 'bad')


def test_registry_and_backend_args(tmp_path):
    arr = rgb_noise(8, 8)
    Image.fromarray(arr).save(tmp_path / 'a.png')
    t = TRANSFORMS.build(dict(type='LoadRGBImageFromFile', backend_args=dict(backend='local')))
    assert np.array_equal(t(dict(img_path=str(tmp_path / 'a.png')))['img'], arr)
    with pytest.raises(ValueError, match='backend_args'):
        LoadRGBImageFromFile(backend_args='local')
