# Copyright (c) pera-mm contributors. All rights reserved.
"""CheckSegLabel after MMSeg's LoadAnnotations: one-line errors naming the label file."""

import numpy as np
import pytest
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope
from PIL import Image

from pera_mm.datasets import CheckSegLabel
from pera_mm.utils.errors import PeraConfigError, PeraDataError

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='CheckSegLabel', num_classes=6),
]


def _pair(tmp_path, label, image_shape=None):
    label = np.asarray(label, dtype=np.uint8)
    shape = label.shape[:2] if image_shape is None else image_shape
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / 'img.png')
    Image.fromarray(label).save(tmp_path / 'ann.png')
    return dict(
        img_path=str(tmp_path / 'img.png'),
        seg_map_path=str(tmp_path / 'ann.png'),
        reduce_zero_label=True,
        label_map=None,
        seg_fields=[],
    )


def _run(info):
    init_default_scope('mmseg')
    return Compose(PIPELINE)(info)


def test_valid_label_passes_unchanged(tmp_path):
    raw = np.arange(42).reshape(6, 7) % 7  # 0 (-> ignored 255) and 1..6 (-> 0..5)
    out = _run(_pair(tmp_path, raw))
    expected = np.where(raw == 0, 255, raw - 1)
    np.testing.assert_array_equal(out['gt_seg_map'], expected)


def test_label_size_differs_from_image(tmp_path):
    info = _pair(tmp_path, np.ones((6, 7)), image_shape=(6, 8))
    with pytest.raises(PeraDataError) as err:
        _run(info)
    message = str(err.value)
    assert '\n' not in message
    assert message == (
        f'label {info["seg_map_path"]} is 6x7 (HxW) but its image {info["img_path"]} is 6x8'
    )


def test_value_outside_classes_after_reduce_zero_label(tmp_path):
    raw = np.ones((6, 7))
    raw[0, :3] = 7  # -> 6, one past the last class 5
    raw[1, 0] = 9  # -> 8
    info = _pair(tmp_path, raw)
    with pytest.raises(PeraDataError) as err:
        _run(info)
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith(f'label {info["seg_map_path"]} has value(s) 6, 8 after')
    assert 'outside the classes 0..5' in message and 'in 4 pixel(s)' in message


def test_colour_label_is_rejected(tmp_path):
    info = _pair(tmp_path, np.ones((6, 7, 3)))
    with pytest.raises(PeraDataError, match=r'ann\.png: expected a single-channel class map'):
        _run(info)


def test_misplaced_before_load_annotations():
    with pytest.raises(PeraConfigError, match='place it after LoadAnnotations'):
        CheckSegLabel(num_classes=6)(dict(img=np.zeros((2, 2, 3))))


@pytest.mark.parametrize('num_classes', [0, 2.0, True])
def test_bad_num_classes(num_classes):
    with pytest.raises(PeraConfigError, match='num_classes'):
        CheckSegLabel(num_classes=num_classes)


@pytest.mark.parametrize('base', ['potsdam_512x512.py', 'loveda_512x512.py'])
def test_shipped_tta_pipeline_checks_the_native_label(tmp_path, base):
    """In the TTA pipelines the label is loaded after Resize: checked against ori_shape."""
    from mmengine.config import Config

    from pera_mm.testing import REPO_ROOT

    cfg = Config.fromfile(REPO_ROOT / 'configs/_base_/datasets' / base)
    init_default_scope('mmseg')
    tta = Compose(cfg.tta_pipeline)
    raw = np.arange(48 * 40).reshape(48, 40) % 7
    out = tta(_pair(tmp_path, raw))
    assert len(out['inputs']) == 12  # 6 scales x 2 flips
    assert tuple(out['inputs'][-1].shape) == (3, 84, 70)  # scale 1.75
    for sample in out['data_samples']:
        assert tuple(sample.gt_sem_seg.data.shape) == (1, 48, 40)
    bad = raw.copy()
    bad[0, 0] = 8
    with pytest.raises(PeraDataError, match=r'ann\.png has value\(s\) 7 after reduce_zero_label'):
        tta(_pair(tmp_path, bad))
