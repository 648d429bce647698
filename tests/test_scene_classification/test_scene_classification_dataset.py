# Copyright (c) pera-mm contributors. All rights reserved.
"""SceneClassificationDataset and the scene pipelines on .tif and off-size images."""

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import pera_mm  # noqa: F401  (registers the dataset)
from pera_mm.datasets import SceneClassificationDataset, split_scene_dataset
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

CONFIGS = REPO_ROOT / 'configs/scene_classification'
SMOKE = CONFIGS / 'pera_vit-tiny-p16_ft-1xb8-6iter_aid-64px_cpu-smoke.py'
LINEAR = CONFIGS / 'pera_vit-tiny-p16_linear-1xb8-6iter_aid-64px_cpu-smoke.py'


def _image(path, size, seed, mode='RGB'):
    w, h = size
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    img = img.convert(mode) if mode != 'RGB' else img
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return arr


@pytest.fixture
def scenes(tmp_path):
    """UCM-like data: .tif files, one 256x253, one 16-bit greyscale .tif, one RGBA png."""
    root = tmp_path / 'data'
    for c, name in enumerate(('agricultural', 'beach', 'river')):
        for i in range(4):
            _image(root / 'images' / name / f'{name}{i:02d}.tif', (96, 96), seed=10 * c + i)
    _image(root / 'images' / 'beach' / 'beach_offsize.tif', (256, 253), seed=99)
    grey = (np.arange(40 * 50, dtype=np.uint16).reshape(40, 50) * 30).astype(np.uint16)
    Image.fromarray(grey).save(root / 'images' / 'river' / 'river_16bit.tif')
    _image(root / 'images' / 'river' / 'river_rgba.png', (70, 64), seed=7, mode='RGBA')
    split_scene_dataset(str(root / 'images'), str(root / 'meta'), 0.5, seed=0)
    return root


def _dataset(root, ann='meta/split-50-50_seed0_train.txt', **kw):
    return SceneClassificationDataset(
        data_root=str(root),
        data_prefix='images',
        ann_file=ann,
        classes='meta/classes.txt',
        **kw,
    )


def test_reads_the_split_files(scenes):
    train, test = _dataset(scenes), _dataset(scenes, 'meta/split-50-50_seed0_test.txt')
    assert train.CLASSES == test.CLASSES == ('agricultural', 'beach', 'river')
    assert len(train) + len(test) == 15
    labels = [train.get_data_info(i)['gt_label'] for i in range(len(train))]
    assert sorted(set(labels)) == [0, 1, 2]
    for i in range(len(train)):
        info = train.get_data_info(i)
        assert f'/images/{train.CLASSES[info["gt_label"]]}/' in info['img_path']


@pytest.mark.parametrize('config', [SMOKE, LINEAR])
def test_pipelines_load_tif_and_off_size_images(scenes, config):
    cfg = Config.fromfile(str(config))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for pipeline in (cfg.train_pipeline, cfg.test_pipeline):
            for ann in ('meta/split-50-50_seed0_train.txt', 'meta/split-50-50_seed0_test.txt'):
                ds = _dataset(scenes, ann, pipeline=pipeline)
                for i in range(len(ds)):
                    item = ds[i]
                    assert item['inputs'].shape == (3, 64, 64)
                    assert item['inputs'].dtype == torch.uint8
                    assert int(item['data_samples'].gt_label) == ds.get_data_info(i)['gt_label']


def test_test_pipeline_keeps_rgb_values(scenes):
    """The test pipeline is a plain resize: a 64x64 RGB tif comes back unchanged, in RGB."""
    arr = _image(scenes / 'images' / 'beach' / 'beach_64.tif', (64, 64), seed=5)
    (scenes / 'meta' / 'one.txt').write_text('beach/beach_64.tif 1\n')
    cfg = Config.fromfile(str(SMOKE))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        item = _dataset(scenes, 'meta/one.txt', pipeline=cfg.test_pipeline)[0]
    assert torch.equal(item['inputs'], torch.from_numpy(arr).permute(2, 0, 1))


def test_bad_annotation_files(scenes):
    meta = scenes / 'meta'
    (meta / 'label.txt').write_text('beach/beach00.tif 3\n')
    with pytest.raises(PeraDataError, match=r'label.txt:1: label 3 is outside the 3 classes'):
        _dataset(scenes, 'meta/label.txt')
    (meta / 'malformed.txt').write_text('beach/beach00.tif 1\nbeach/beach01.tif\n')
    with pytest.raises(PeraDataError, match=r'malformed.txt:2: expected "relative/path label"'):
        _dataset(scenes, 'meta/malformed.txt')
    (meta / 'missing.txt').write_text('beach/nope.tif 1\n')
    with pytest.raises(PeraFileNotFoundError, match=r'missing.txt:1: image .*nope.tif does not'):
        _dataset(scenes, 'meta/missing.txt')
    (meta / 'empty.txt').write_text('\n')
    with pytest.raises(PeraDataError, match='no sample listed'):
        _dataset(scenes, 'meta/empty.txt')
    with pytest.raises(PeraFileNotFoundError, match='no such annotation file'):
        _dataset(scenes, 'meta/absent.txt')
    with pytest.raises(PeraFileNotFoundError, match='no_classes.txt: no such classes file'):
        SceneClassificationDataset(
            data_root=str(scenes), ann_file='meta/label.txt', classes='meta/no_classes.txt'
        )
    with pytest.raises(PeraConfigError, match='ann_file is required'):
        SceneClassificationDataset(ann_file='', classes=['a'])


def test_tab_separated_annotation_lines(scenes):
    spaced = (scenes / 'meta/split-50-50_seed0_train.txt').read_text().splitlines()
    tabbed = scenes / 'meta/tabbed.txt'
    tabbed.write_text(''.join(line.replace(' ', '\t') + '\n' for line in spaced))
    a, b = _dataset(scenes), _dataset(scenes, 'meta/tabbed.txt')
    assert [a.get_data_info(i)['gt_label'] for i in range(len(a))] == [
        b.get_data_info(i)['gt_label'] for i in range(len(b))
    ]
    assert [a.get_data_info(i)['img_path'] for i in range(len(a))] == [
        b.get_data_info(i)['img_path'] for i in range(len(b))
    ]
