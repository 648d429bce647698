# Copyright (c) pera-mm contributors. All rights reserved.
"""IoUF1Metric on a hand-built confusion case, checked against numbers computed by hand."""

import math

import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS

from pera_mm.evaluation import IoUF1Metric
from pera_mm.utils.errors import PeraConfigError, PeraDataError

CLASSES = ('a', 'b', 'c', 'd', 'e')


def _sample(pred, label):
    return dict(
        pred_sem_seg=dict(data=torch.tensor([pred])),
        gt_sem_seg=dict(data=torch.tensor([label])),
    )


# Image 1 (label 255 at row 1, col 2 is ignored, and so is the prediction 3 there):
#   (label, pred) pairs: (0,0) x3, (0,1), (1,1) x2, (1,2), (2,2), (2,0)
# Image 2: class e (4) labelled twice, predicted as a.
SAMPLES = [
    _sample([[0, 0, 1, 1, 2], [2, 0, 3, 0, 1]], [[0, 0, 0, 1, 1], [2, 2, 255, 0, 1]]),
    _sample([[0, 0]], [[4, 4]]),
]
# By hand, I / P / L per class: a 3/6/4, b 2/3/3, c 1/2/2, d 0/0/0 (NaN), e 0/0/2.
HAND = {
    'aAcc': 54.55,  # 6 correct of 11 labelled pixels
    'IoU.a': 42.86,  # 3 / (6 + 4 - 3)
    'IoU.b': 50.0,  # 2 / 4
    'IoU.c': 33.33,  # 1 / 3
    'IoU.e': 0.0,
    'Acc.a': 75.0,
    'Acc.b': 66.67,
    'Acc.c': 50.0,
    'Acc.e': 0.0,
    'F1.a': 60.0,  # 2*3 / (6 + 4)
    'F1.b': 66.67,  # 4 / 6
    'F1.c': 50.0,  # 2 / 4
    'F1.e': 0.0,  # labelled, never predicted: 0, not NaN
    'mIoU': 31.55,  # (3/7 + 1/2 + 1/3 + 0) / 4, d left out
    'mAcc': 47.92,  # (3/4 + 2/3 + 1/2 + 0) / 4
    'mF1': 44.17,  # (3/5 + 2/3 + 1/2 + 0) / 4
    'mIoU_ac': 38.1,  # (3/7 + 1/3) / 2
    'mF1_ac': 55.0,  # (3/5 + 1/2) / 2
    'mIoU_bd': 50.0,  # d is NaN, left out
    'mF1_bd': 66.67,
}


def _evaluate(metric, samples=SAMPLES, classes=CLASSES):
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_values_equal_hand_computed_numbers():
    metrics = _evaluate(IoUF1Metric(class_subsets=dict(ac=['a', 'c'], bd=['b', 'd'])))
    for key, value in HAND.items():
        assert metrics[key] == pytest.approx(value, abs=1e-9), key
    for key in ('IoU.d', 'Acc.d', 'F1.d'):  # absent from labels and predictions
        assert math.isnan(metrics[key])
    expected_keys = {'aAcc', 'mIoU', 'mAcc', 'mF1', 'mIoU_ac', 'mF1_ac', 'mIoU_bd', 'mF1_bd'}
    expected_keys |= {f'{m}.{c}' for m in ('IoU', 'Acc', 'F1') for c in CLASSES}
    assert set(metrics) == expected_keys
    assert all(isinstance(v, float) for v in metrics.values())


def test_means_agree_with_stock_iou_metric():
    ours = _evaluate(IoUF1Metric())
    stock = _evaluate(IoUMetric(iou_metrics=['mIoU', 'mFscore']))
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert ours[key] == pytest.approx(float(stock[key]), abs=1e-4), key  # stock: float32
    # the stock F-score takes class e's precision 0/0 = NaN and drops e from the mean
    assert stock['mFscore'] == pytest.approx(58.89)
    assert ours['mF1'] == pytest.approx(44.17)


def test_nan_to_num_counts_absent_classes():
    metrics = _evaluate(IoUF1Metric(nan_to_num=0))
    assert metrics['IoU.d'] == 0.0
    assert metrics['mIoU'] == pytest.approx(25.24)  # (3/7 + 1/2 + 1/3) / 5


def test_built_from_the_mmseg_registry():
    init_default_scope('mmseg')
    metric = METRICS.build(dict(type='IoUF1Metric', class_subsets=dict(ac=['a', 'c'])))
    assert isinstance(metric, IoUF1Metric)
    assert _evaluate(metric)['mIoU_ac'] == pytest.approx(38.1)


def test_prefix_applies_to_every_key():
    metrics = _evaluate(IoUF1Metric(prefix='val', class_subsets=dict(ac=['a', 'c'])))
    assert metrics['val/mF1_ac'] == pytest.approx(55.0)
    assert metrics['val/IoU.a'] == pytest.approx(42.86)


def test_unknown_subset_class_is_one_line_config_error():
    metric = IoUF1Metric(class_subsets=dict(no_clutter=['a', 'cars']))
    with pytest.raises(PeraConfigError) as err:
        metric.dataset_meta = dict(classes=CLASSES)
    message = str(err.value)
    assert '\n' not in message
    assert "class_subsets['no_clutter']" in message and "'cars'" in message


@pytest.mark.parametrize(
    'subsets, fragment',
    [
        (['a'], 'must be a dict'),
        (dict(ac='a'), 'non-empty list'),
        (dict(ac=[]), 'non-empty list'),
        ({'a c': ['a']}, 'identifier-like'),
        (dict(ac=['a', 'a']), 'lists a class twice'),
    ],
)
def test_malformed_subsets_are_config_errors(subsets, fragment):
    with pytest.raises(PeraConfigError, match=fragment):
        IoUF1Metric(class_subsets=subsets)


def test_no_results_is_data_error():
    metric = IoUF1Metric()
    metric.dataset_meta = dict(classes=CLASSES)
    with pytest.raises(PeraDataError, match='no image was evaluated'):
        metric.compute_metrics([])
