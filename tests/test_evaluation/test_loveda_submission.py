# Copyright (c) pera-mm contributors. All rights reserved.
"""LoveDASubmissionMetric writes full-size PNGs valued 0..6, named as the inputs."""

import zipfile

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from PIL import Image

from pera_mm.evaluation import LoveDASubmissionMetric
from pera_mm.utils.errors import PeraConfigError, PeraDataError

CLASSES = ('background', 'building', 'road', 'water', 'barren', 'forest', 'agricultural')


def _prediction(seed, shape=(48, 40)):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 7, shape))


def _sample(img_path, pred, ori_shape=None):
    return dict(
        img_path=img_path,
        ori_shape=tuple(pred.shape) if ori_shape is None else ori_shape,
        reduce_zero_label=True,
        pred_sem_seg=dict(data=pred[None]),
    )


def test_pngs_hold_class_indices_full_size_named_as_inputs(tmp_path):
    init_default_scope('mmseg')
    metric = METRICS.build(
        dict(
            type='LoveDASubmissionMetric',
            output_dir=str(tmp_path / 'pred'),
            zip_path=str(tmp_path / 'submission.zip'),
        )
    )
    metric.dataset_meta = dict(classes=CLASSES)
    preds = {'4191': _prediction(0), '5167': _prediction(1, (32, 56))}
    metric.process({}, [_sample(f'/data/loveDA/img_dir/test/{k}.png', v) for k, v in preds.items()])
    assert metric.evaluate(2) == {}
    for name, pred in preds.items():
        with Image.open(tmp_path / 'pred' / f'{name}.png') as png:
            assert png.mode == 'L'
            written = np.array(png)
        np.testing.assert_array_equal(written, pred.numpy())  # 0..6, not +1
        assert written.shape == tuple(pred.shape)
    assert written.max() == 6 and written.min() == 0
    with zipfile.ZipFile(tmp_path / 'submission.zip') as archive:
        assert sorted(archive.namelist()) == ['4191.png', '5167.png']  # at the root
        for name in archive.namelist():
            same = (tmp_path / 'pred' / name).read_bytes()
            assert archive.read(name) == same


def test_stock_format_only_writes_values_one_higher(tmp_path):
    """The reason for this metric: MMSeg's export is 1..7 under reduce_zero_label."""
    pred = _prediction(2)
    stock = IoUMetric(format_only=True, output_dir=str(tmp_path / 'stock'))
    stock.dataset_meta = dict(classes=CLASSES)
    stock.process({}, [_sample('x/7000.png', pred)])
    ours = LoveDASubmissionMetric(output_dir=str(tmp_path / 'ours'))
    ours.dataset_meta = dict(classes=CLASSES)
    ours.process({}, [_sample('x/7000.png', pred)])
    stock_png = np.array(Image.open(tmp_path / 'stock' / '7000.png'))
    ours_png = np.array(Image.open(tmp_path / 'ours' / '7000.png'))
    np.testing.assert_array_equal(stock_png, ours_png + 1)


def test_prediction_not_at_full_size_is_data_error(tmp_path):
    metric = LoveDASubmissionMetric(output_dir=str(tmp_path))
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(PeraDataError, match=r'test/9\.png .*full image size \(1024, 1024\)'):
        metric.process({}, [_sample('test/9.png', _prediction(3), ori_shape=(1024, 1024))])


def test_value_outside_classes_is_data_error(tmp_path):
    metric = LoveDASubmissionMetric(output_dir=str(tmp_path))
    metric.dataset_meta = dict(classes=CLASSES)
    pred = _prediction(4)
    pred[0, 0] = 7
    with pytest.raises(PeraDataError, match=r'test/9\.png has values 0\.\.7, expected 0\.\.6'):
        metric.process({}, [_sample('test/9.png', pred)])


def test_two_inputs_with_one_name_is_data_error(tmp_path):
    metric = LoveDASubmissionMetric(output_dir=str(tmp_path))
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(
        {}, [_sample('Rural/1.png', _prediction(5)), _sample('Urban/1.png', _prediction(6))]
    )
    with pytest.raises(PeraDataError, match=r'same output name \(1\.png\)'):
        metric.evaluate(2)


def test_output_dir_is_required():
    with pytest.raises(PeraConfigError, match='output_dir'):
        LoveDASubmissionMetric(output_dir='')
