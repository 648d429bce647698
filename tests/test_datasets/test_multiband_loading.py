"""N-band loading (GeoTIFF, .npy, PNG/JPEG, one file per band) and the N-band preprocessor."""

import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample
from PIL import Image

import pera_mm  # noqa: F401  (registration)
from pera_mm.datasets.transforms import UnreadableImageError
from pera_mm.utils import PeraConfigError, PeraDataError

S2_MEAN = [0.1373, 0.1089, 0.0962, 0.1204]
S2_STD = [0.0184, 0.0225, 0.0301, 0.0512]
OSCD = 'OSCD/Onera Satellite Change Detection dataset - Images'


def load(path, **cfg):
    t = TRANSFORMS.build(dict(type='LoadMultiBandImageFromFile', **cfg))
    return t(dict(img_path=str(path)))['img']


def test_npy_layouts_and_band_selection(tmp_path):
    arr = np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7)
    np.save(tmp_path / 'hwc.npy', arr)
    np.save(tmp_path / 'chw.npy', np.moveaxis(arr, -1, 0))
    assert np.array_equal(load(tmp_path / 'hwc.npy', num_bands=7), arr)
    chw = load(tmp_path / 'chw.npy', num_bands=7, npy_layout='CHW')
    assert np.array_equal(chw, arr) and chw.dtype == np.uint16
    picked = load(tmp_path / 'hwc.npy', bands=[3, 1, 2, 6], num_bands=4, to_float32=True)
    assert picked.dtype == np.float32 and np.array_equal(picked, arr[..., [3, 1, 2, 6]])


def test_png_jpeg_and_geotiff(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 255, (9, 8, 4)).astype(np.uint8)
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'a.png')
    assert np.array_equal(load(tmp_path / 'a.png', num_bands=4), rgba)
    Image.fromarray(rgba[..., :3]).save(tmp_path / 'a.jpg')
    assert load(tmp_path / 'a.jpg', num_bands=3).shape == (9, 8, 3)
    rasterio = pytest.importorskip('rasterio')
    bands = np.random.default_rng(1).integers(0, 10000, (6, 9, 8)).astype(np.uint16)
    with rasterio.open(
        tmp_path / 'b.tif', 'w', driver='GTiff', width=8, height=9, count=6, dtype='uint16'
    ) as dst:
        dst.write(bands)
    img = load(tmp_path / 'b.tif', num_bands=6)
    assert img.dtype == np.uint16 and np.array_equal(img, np.moveaxis(bands, 0, -1))


def test_band_count_mismatch_names_the_file(tmp_path):
    np.save(tmp_path / 'rgb.npy', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(PeraDataError) as err:
        load(tmp_path / 'rgb.npy', num_bands=4)
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith(str(tmp_path / 'rgb.npy'))
    assert 'has 3 bands, expected num_bands=4' in msg
    with pytest.raises(PeraDataError, match='needs at least 8'):
        load(tmp_path / 'rgb.npy', bands=[0, 7])
    with pytest.raises(UnreadableImageError):  # a dataset skips it
        load(tmp_path / 'missing.npy', num_bands=3)
    with pytest.raises(PeraConfigError, match='bands lists 2 bands but num_bands is 3'):
        load(tmp_path / 'rgb.npy', bands=[0, 1], num_bands=3)


def test_preprocessor_normalises_each_band():
    pre = MODELS.build(
        dict(
            type='MultiBandDataPreProcessor',
            num_bands=4,
            pixel_scale=10000,
            mean=S2_MEAN,
            std=S2_STD,
        )
    )
    raw = torch.randint(500, 3000, (2, 4, 6, 6)).to(torch.uint16)
    out = pre(dict(inputs=list(raw), data_samples=None))['inputs']
    mean, std = torch.tensor(S2_MEAN).view(4, 1, 1), torch.tensor(S2_STD).view(4, 1, 1)
    expected = (raw.int().float() / 10000 - mean) / std
    assert out.shape == (2, 4, 6, 6) and torch.allclose(out, expected)
    views = pre(dict(inputs=[raw, raw[:, :, :4, :4]]))['inputs']
    assert len(views) == 2 and torch.allclose(views[1], expected[:, :, :4, :4])
    sample = DataSample(metainfo=dict(img_path='tiles/x.npy'))
    with pytest.raises(PeraDataError) as err:
        pre(dict(inputs=torch.zeros(1, 3, 6, 6), data_samples=[sample]))
    assert str(err.value).startswith('tiles/x.npy: the batch has 3 bands')
    with pytest.raises(PeraConfigError, match='mean has 3 values; expected 4'):
        MODELS.build(dict(type='MultiBandDataPreProcessor', num_bands=4, mean=[0] * 3, std=[1] * 3))


@pytest.mark.needs_shared
def test_sentinel2_band_files_reproduce_the_ijepa_record(shared_path):
    """Loading the OSCD band files of the I-JEPA record, cropping and normalising them as
    its description says gives the record's raw DN and network input."""
    record = torch.load(shared_path('parity/ijepa_parity_v1.pt'), weights_only=True)
    cfg = record['config']['input']
    loader = TRANSFORMS.build(
        dict(
            type='LoadMultiBandImageFromFile',
            num_bands=4,
            band_suffixes=['B02', 'B03', 'B04', 'B08'],
        )
    )
    pre = MODELS.build(
        dict(
            type='MultiBandDataPreProcessor',
            num_bands=4,
            pixel_scale=10000,
            mean=cfg['mean'],
            std=cfg['std'],
        )
    )
    crops = []
    for crop in cfg['crops']:
        folder = shared_path(f'{OSCD}/{crop["city"]}/{crop["dir"]}')
        img = loader(dict(img_path=str(folder)))['img']
        assert img.dtype == np.uint16 and img.shape[2] == 4
        t, left, s = crop['top'], crop['left'], crop['size']
        crops.append(
            torch.from_numpy(np.ascontiguousarray(img[t : t + s, left : left + s])).permute(2, 0, 1)
        )
    raw = torch.stack(crops)
    assert torch.equal(raw.int(), record['input_raw'])
    out = pre(dict(inputs=raw))['inputs']
    err = ((out - record['input']).norm() / record['input'].norm()).item()
    assert err < 1e-6
