# Copyright (c) pera-mm contributors. All rights reserved.
"""GEO-Bench (HDF5) and MADOS (GeoTIFF) readers on samples written here from real OSCD pixels.

No GEO-Bench or MADOS sample is available: ``pera_mm.testing.geobench_mados_fixtures``
writes both layouts from the real OSCD Sentinel-2 bands, with the OSCD change maps
({1, 2}) as labels. Checks: values read equal the written pixels, band selection and
order, dates, NaN mask -> ignore, splits, band statistics, one-line errors, and loading
through the base configs' pipelines.
"""

import json

import h5py
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmseg.registry import DATASETS

from pera_mm.datasets import (
    GeoBenchSegDataset,
    MADOSDataset,
    geobench_band_name,
    read_geobench_sample,
)
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.geobench_mados_fixtures import oscd_city, write_geobench_task, write_mados_root
from pera_mm.utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

BASE = REPO_ROOT / 'configs' / '_base_' / 'datasets'
# (name, city, y0, x0, split): paris is 408 x 390, bercy 395 x 360 at 10 m
GEOBENCH_CROPS = [
    ('sample_0', 'paris', 0, 0, 'train'),
    ('sample_1', 'bercy', 139, 104, 'train'),
    ('sample_2', 'paris', 152, 134, 'valid'),
    ('sample_3', 'bercy', 0, 0, 'test'),
]
MADOS_CROPS = [
    (0, '1', 'paris', 0, 0, 'train'),
    (1, '3', 'bercy', 155, 120, 'train'),
    (0, '2', 'paris', 168, 150, 'val'),
    (1, '7', 'bercy', 0, 0, 'test'),
]


@pytest.fixture(scope='module')
def cities(shared_data):
    return {city: oscd_city(shared_data, city) for city in ('paris', 'bercy')}


@pytest.fixture
def cashew(tmp_path, cities):
    task = tmp_path / 'm-cashew-plant'
    return task, write_geobench_task(task, cities, GEOBENCH_CROPS, date='2019-11-10')


@pytest.fixture
def mados(tmp_path, cities):
    root = tmp_path / 'MADOS'
    return root, write_mados_root(root, cities, MADOS_CROPS)


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(cfg)


@pytest.mark.needs_shared
def test_geobench_values_bands_order_and_splits(cashew, cities):
    task, written = cashew
    dataset = GeoBenchSegDataset(
        data_root=str(task), task='m-cashew-plant', split='train', bands=['B8', 'B2', 'B4'],
        pipeline=[dict(type='LoadGeoBenchSample')],
    )  # fmt: skip
    names = [dataset.get_data_info(i)['img_path'].rsplit('/', 1)[1] for i in range(len(dataset))]
    assert names == ['sample_0.hdf5', 'sample_1.hdf5']
    assert len(dataset.metainfo['classes']) == 7
    sample = dataset[1]
    expected = np.stack(
        [written['sample_1']['bands'][n] for n in ('08 - NIR', '02 - Blue', '04 - Red')], -1
    )
    assert sample['img'].dtype == np.float32 and sample['img'].shape == (256, 256, 3)
    np.testing.assert_array_equal(sample['img'], expected.astype(np.float32))
    # ... which are the real OSCD pixels of bercy at (139, 104), and its change map
    np.testing.assert_array_equal(sample['img'][..., 1], cities['bercy']['B02'][139:395, 104:360])
    np.testing.assert_array_equal(sample['gt_seg_map'], cities['bercy']['label'][139:395, 104:360])
    assert set(np.unique(sample['gt_seg_map'])) == {1, 2}
    val = GeoBenchSegDataset(data_root=str(task), split='val')  # 'val' = GEO-Bench 'valid'
    test = GeoBenchSegDataset(data_root=str(task), split='test')
    assert [len(val), len(test)] == [1, 1]
    assert val.get_data_info(0)['img_path'].endswith('sample_2.hdf5')


@pytest.mark.needs_shared
def test_geobench_band_stats_and_undated_layout(tmp_path, cashew, cities):
    task, written = cashew
    stats = GeoBenchSegDataset(data_root=str(task), bands=['B2', 'B3', 'B4', 'B8']).band_stats()
    train = [written['sample_0'], written['sample_1']]
    for i, name in enumerate(('02 - Blue', '03 - Green', '04 - Red', '08 - NIR')):
        values = np.concatenate([s['bands'][name].ravel() for s in train]).astype(float)
        assert stats['mean'][i] == pytest.approx(values.mean())
        assert stats['std'][i] == pytest.approx(values.std())
    # m-SA-crop-type stores its bands without a date suffix
    sa = tmp_path / 'm-SA-crop-type'
    write_geobench_task(sa, cities, GEOBENCH_CROPS[:1])
    with h5py.File(sa / 'sample_0.hdf5') as handle:
        assert '02 - Blue' in handle and '02 - Blue_2019-11-10' not in handle
    dataset = GeoBenchSegDataset(
        data_root=str(sa), task='m-SA-crop-type', pipeline=[dict(type='LoadGeoBenchSample')]
    )
    assert len(dataset.metainfo['classes']) == 10
    np.testing.assert_array_equal(dataset[0]['img'][..., 3], cities['paris']['B08'][:256, :256])


@pytest.mark.needs_shared
def test_geobench_dates_and_bad_input(tmp_path, cashew):
    task, _ = cashew
    path = str(task / 'sample_0.hdf5')
    bands = [geobench_band_name(b) for b in ('B2', 'b03', '04 - Red')]
    assert bands == ['02 - Blue', '03 - Green', '04 - Red']
    img, _ = read_geobench_sample(path, bands, date='2019-11-10', img_size=256)
    assert img.shape == (256, 256, 3)
    with pytest.raises(PeraDataError, match="no band '02 - Blue' dated 2020-01-01"):
        read_geobench_sample(path, bands, date='2020-01-01')
    with pytest.raises(PeraDataError, match=r'is 256x256, expected 240x240'):
        read_geobench_sample(path, bands, img_size=240)
    with pytest.raises(PeraConfigError, match="band 'B13'"):
        geobench_band_name('B13')
    # a second date of the same band: the date must be named
    with h5py.File(path, 'a') as handle:
        handle.create_dataset('02 - Blue_2019-12-05', data=np.zeros((256, 256), np.int16))
    with pytest.raises(PeraDataError, match=r"band '02 - Blue' has 2 dates .*set date="):
        read_geobench_sample(path, bands)
    # a missing band / label, a wrong size, a missing sample file
    with h5py.File(task / 'broken.hdf5', 'w') as handle:
        handle.create_dataset('02 - Blue', data=np.zeros((256, 256), np.int16))
    with pytest.raises(PeraDataError, match="no band '03 - Green'"):
        read_geobench_sample(str(task / 'broken.hdf5'), bands[:2])
    with pytest.raises(PeraDataError, match='no "label" dataset'):
        read_geobench_sample(str(task / 'broken.hdf5'), bands[:1])
    partition = json.loads((task / 'default_partition.json').read_text())
    partition['test'].append('sample_9')
    (task / 'default_partition.json').write_text(json.dumps(partition))
    with pytest.raises(PeraFileNotFoundError, match=r'sample_9\.hdf5: listed in .* but not found'):
        GeoBenchSegDataset(data_root=str(task), split='test')
    with pytest.raises(PeraFileNotFoundError, match='other_partition.json'):
        GeoBenchSegDataset(data_root=str(task), partition='other')
    with pytest.raises(PeraConfigError, match="task 'm-cashew'"):
        GeoBenchSegDataset(data_root=str(task), task='m-cashew')


@pytest.mark.needs_shared
def test_mados_values_nan_ignore_and_band_names(mados, cities):
    root, written = mados
    dataset = MADOSDataset(
        data_root=str(root), split='train', pipeline=[dict(type='LoadMADOSSample')]
    )
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert [d['mados_name'] for d in infos] == ['Scene_0_1', 'Scene_1_3']
    # Sentinel-2A names B3 560 nm, 2B 559 nm: both are found
    assert infos[0]['band_paths'][1].endswith('Scene_0_L2R_rhorc_560_1.tif')
    assert infos[1]['band_paths'][1].endswith('Scene_1_L2R_rhorc_559_3.tif')
    sample = dataset[1]
    img, label = sample['img'], sample['gt_seg_map']
    truth = written['Scene_1_3']
    nan = np.isnan(truth['img']).any(-1)
    assert nan.sum() == 8 * 16
    np.testing.assert_array_equal(img[~nan], truth['img'][~nan])
    assert (img[nan][:, 1] == 0).all()  # the NaN band value -> nan_fill; the others kept
    np.testing.assert_array_equal(img[nan][:, [0, 2, 3]], truth['img'][nan][:, [0, 2, 3]])
    real_b2 = cities['bercy']['B02'][155:395, 120:360].astype(np.float32) / 10000
    np.testing.assert_array_equal(img[..., 0], real_b2)
    # labels: 0 (unlabelled rows) and NaN pixels -> 255; change-map classes 1, 2 -> 0, 1
    expected = np.where(truth['cl'] == 0, 255, truth['cl'].astype(int) - 1)
    expected[nan] = 255
    np.testing.assert_array_equal(label, expected.astype(np.uint8))
    assert (label[200:] == 255).all() and set(np.unique(label[8:200])) == {0, 1}
    assert len(dataset.metainfo['classes']) == 15
    # only some bands, in another order; the fill value per band
    picked = MADOSDataset(
        data_root=str(root), split='val', bands=['B8', 'B3'],
        pipeline=[dict(type='LoadMADOSSample', nan_fill=[0.5, 0.25])],
    )[0]  # fmt: skip
    truth = written['Scene_0_2']['img']
    np.testing.assert_array_equal(picked['img'][8:, :, 0], truth[8:, :, 3])
    assert (picked['img'][:8, :16, 1] == 0.25).all()


@pytest.mark.needs_shared
def test_mados_bad_input(mados):
    root, _ = mados
    (root / 'Scene_1' / '10' / 'Scene_1_L2R_rhorc_665_7.tif').unlink()
    with pytest.raises(
        PeraFileNotFoundError, match=r'Scene_1_L2R_rhorc_665_7\.tif: MADOS band B4 not found'
    ):
        MADOSDataset(data_root=str(root), split='test')
    (root / 'Scene_0' / '10' / 'Scene_0_L2R_cl_2.tif').unlink()
    with pytest.raises(
        PeraFileNotFoundError, match=r'Scene_0_L2R_cl_2\.tif: MADOS label of Scene_0_2'
    ):
        MADOSDataset(data_root=str(root), split='val')
    with pytest.raises(PeraConfigError, match="bands \\['B5'\\]"):
        MADOSDataset(data_root=str(root), bands=['B5'])
    small = MADOSDataset(
        data_root=str(root), split='train', pipeline=[dict(type='LoadMADOSSample', size=256)]
    )
    with pytest.raises(
        PeraDataError, match=r'Scene_0_L2R_rhorc_492_1\.tif is 240x240, expected 256x256'
    ):
        small[0]
    with pytest.raises(PeraFileNotFoundError, match=r'splits/train_X\.txt'):
        MADOSDataset(data_root=str(root / 'nowhere'))


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'base, kind',
    [
        ('geobench_m-cashew-plant_256x256.py', 'cashew'),
        ('geobench_m-sa-crop-type_256x256.py', 'sa'),
        ('mados_240x240.py', 'mados'),
    ],
)
def test_base_configs_load_the_fixtures(base, kind, tmp_path, cities):
    cfg = Config.fromfile(BASE / base)
    if kind == 'mados':
        root = tmp_path / 'MADOS'
        write_mados_root(root, cities, MADOS_CROPS)
        assert cfg.band_mean == pytest.approx([0.05223386, 0.04381474, 0.0357083, 0.03566642])
    else:
        root = tmp_path / 'task'
        write_geobench_task(
            root, cities, GEOBENCH_CROPS, date='2019-11-10' if kind == 'cashew' else None
        )
        assert cfg.band_mean is None and cfg.band_std is None  # must be set from band_stats.json
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset_cfg = cfg[loader].dataset
        dataset_cfg.data_root = str(root)
        dataset = _build(dataset_cfg)
        packed = dataset[0]
        size = 240 if kind == 'mados' else 256
        assert tuple(packed['inputs'].shape) == (4, size, size)
        assert tuple(packed['data_samples'].gt_sem_seg.data.shape) == (1, size, size)
