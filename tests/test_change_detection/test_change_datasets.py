"""LEVIR-CD / DSIFN-CD datasets in both layouts, on the real sample pairs."""

import os

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS

import pera_mm  # noqa: F401
from pera_mm.utils.errors import PeraDataError, PeraFileNotFoundError

PIPELINE = [
    dict(type='LoadBitemporalImagesFromFile'),
    dict(type='LoadChangeLabelFromFile'),
    dict(type='PackSegInputs', meta_keys=('img_path', 'img_path_b', 'seg_map_path', 'ori_shape')),
]


def _build(**cfg):
    init_default_scope('mmseg')
    return DATASETS.build(dict(pipeline=PIPELINE, **cfg))


@pytest.mark.needs_shared
def test_levir_flat_layout_with_and_without_list(shared_path):
    root = shared_path('LEVIR-CD')
    listed = _build(type='LEVIRCDChangeDataset', data_root=str(root), ann_file='list/demo.txt')
    names = [line.strip() for line in open(root / 'list' / 'demo.txt') if line.strip()]
    assert [
        os.path.basename(listed.get_data_info(i)['img_path']) for i in range(len(listed))
    ] == names
    every = _build(type='LEVIRCDChangeDataset', data_root=str(root))
    assert len(every) == len(os.listdir(root / 'A')) == 11
    sample = listed[0]
    assert sample['inputs'].shape == (6, 256, 256)
    assert set(sample['data_samples'].gt_sem_seg.data.unique().tolist()) == {0, 1}
    meta = sample['data_samples'].metainfo
    assert meta['img_path_b'].endswith(os.path.join('B', names[0]))
    assert listed.metainfo['classes'] == ('unchanged', 'changed')


@pytest.mark.needs_shared
def test_levir_official_layout(shared_path, tmp_path):
    root = shared_path('LEVIR-CD')
    for split, stems in (('train', ['train_36_0512_0512']), ('test', ['test_2_0000_0000'])):
        for sub in ('A', 'B', 'label'):
            os.makedirs(tmp_path / split / sub)
            for stem in stems:
                os.symlink(root / sub / f'{stem}.png', tmp_path / split / sub / f'{stem}.png')
    ds = _build(
        type='LEVIRCDChangeDataset',
        data_root=str(tmp_path),
        data_prefix=dict(img_path='test/A', img_path_b='test/B', seg_map_path='test/label'),
    )
    assert len(ds) == 1 and ds.get_data_info(0)['img_path_b'].endswith(
        'test/B/test_2_0000_0000.png'
    )
    label = ds[0]['data_samples'].gt_sem_seg.data
    raw = np.asarray(__import__('PIL.Image').Image.open(root / 'label' / 'test_2_0000_0000.png'))
    np.testing.assert_array_equal(label[0].numpy(), raw // 255)


@pytest.mark.needs_shared
def test_dsifn_flat_layout(shared_path):
    root = shared_path('DSIFN-CD')
    ds = _build(type='DSIFNCDChangeDataset', data_root=str(root), ann_file='list/demo.txt')
    assert len(ds) == 10
    assert ds[3]['inputs'].shape == (6, 256, 256)


def test_missing_b_image_names_it(tmp_path):
    for sub in ('A', 'B', 'label'):
        os.makedirs(tmp_path / sub)
    (tmp_path / 'A' / 'x.png').write_bytes(b'')
    (tmp_path / 'label' / 'x.png').write_bytes(b'')
    with pytest.raises(
        PeraFileNotFoundError, match=r"date B image of pair 'x' not found: .*B/x.png"
    ):
        _build(type='LEVIRCDChangeDataset', data_root=str(tmp_path))
    os.remove(tmp_path / 'A' / 'x.png')
    with pytest.raises(PeraDataError, match='no pair found'):
        _build(type='LEVIRCDChangeDataset', data_root=str(tmp_path))


@pytest.mark.needs_shared
def test_bit_r18_training_pipeline_on_real_pairs(shared_path):
    """The BIT-R18 config's reference augmentation (MMSeg's RandomResize / RandomCrop on the
    stacked pair, our flips and blur) gives 256 px 6-band samples with 0/1 labels."""
    from mmengine.config import Config

    from pera_mm.testing import REPO_ROOT

    cfg = Config.fromfile(
        str(REPO_ROOT / 'configs/change_detection/bit_r18_1xb8-200e_levir-cd-256x256.py')
    )
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=str(shared_path('LEVIR-CD')), ann_file='list/demo.txt')
    init_default_scope('mmseg')
    ds = DATASETS.build(dataset)
    for i in range(3):
        sample = ds[i]
        assert sample['inputs'].shape == (6, 256, 256)
        assert set(sample['data_samples'].gt_sem_seg.data.unique().tolist()) <= {0, 1, 255}
