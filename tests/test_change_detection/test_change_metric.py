# Copyright (c) pera-mm contributors. All rights reserved.
"""ChangeDetectionMetric on hand-built predictions with known values."""

import math

import pytest
import torch
from mmengine.structures import PixelData
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

import pera_mm  # noqa: F401  (registration)
from pera_mm.utils.errors import PeraConfigError, PeraDataError

# Image 1 (3 x 4, the last pixel ignored) and image 2 (2 x 2, nothing changed):
# TP 3, FN 1, FP 2 + 1, TN 5 + 3 (15 labelled pixels).
LABEL_1 = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 255]]
PRED_1 = [[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]]
LABEL_2 = [[0, 0], [0, 0]]
PRED_2 = [[0, 1], [0, 0]]
EXPECTED = {
    'changed/precision': 100 * 3 / 6,
    'changed/recall': 100 * 3 / 4,
    'changed/F1': 100 * 2 * 3 / (2 * 3 + 3 + 1),  # = 2PR / (P + R) = 60
    'changed/IoU': 100 * 3 / 7,
    'unchanged/IoU': 100 * 8 / 12,
    'mIoU': 100 * (3 / 7 + 8 / 12) / 2,
    'aAcc': 100 * 11 / 15,
}


def sample(pred, label, path='pair.png'):
    s = SegDataSample(metainfo=dict(seg_map_path=path, img_path=path))
    s.pred_sem_seg = PixelData(data=torch.tensor(pred)[None])
    s.gt_sem_seg = PixelData(data=torch.tensor(label)[None])
    return s.to_dict()


def evaluate(metric, pairs):
    metric.process({}, [sample(p, lab) for p, lab in pairs])
    return metric.evaluate(len(pairs))


def test_hand_built_prediction_gives_the_known_values():
    metric = METRICS.build(dict(type='ChangeDetectionMetric'))
    got = evaluate(metric, [(PRED_1, LABEL_1), (PRED_2, LABEL_2)])
    assert set(got) == set(EXPECTED)
    for key, value in EXPECTED.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key
    assert got['changed/F1'] == pytest.approx(60.0)
    assert all(0 <= v <= 100 for v in got.values())


def test_counts_are_summed_over_the_set_not_averaged_per_image():
    metric = METRICS.build(dict(type='ChangeDetectionMetric'))
    per_image_f1 = []
    for pred, label in [(PRED_1, LABEL_1), (PRED_2, LABEL_2)]:
        single = METRICS.build(dict(type='ChangeDetectionMetric'))
        per_image_f1.append(evaluate(single, [(pred, label)])['changed/F1'])
    assert per_image_f1 == pytest.approx([100 * 6 / 9, 0.0])
    assert evaluate(metric, [(PRED_1, LABEL_1), (PRED_2, LABEL_2)])['changed/F1'] == (
        pytest.approx(60.0)
    )


def test_miou_and_aacc_agree_with_mmseg_iou_metric():
    ours = evaluate(
        METRICS.build(dict(type='ChangeDetectionMetric')), [(PRED_1, LABEL_1), (PRED_2, LABEL_2)]
    )
    theirs = IoUMetric(iou_metrics=['mIoU'])
    theirs.dataset_meta = dict(classes=('unchanged', 'changed'))
    theirs = evaluate(theirs, [(PRED_1, LABEL_1), (PRED_2, LABEL_2)])
    assert theirs['mIoU'] == pytest.approx(round(ours['mIoU'], 2))
    assert theirs['aAcc'] == pytest.approx(round(ours['aAcc'], 2))


def test_prefix_and_change_index():
    metric = METRICS.build(dict(type='ChangeDetectionMetric', prefix='levir'))
    got = evaluate(metric, [(PRED_1, LABEL_1)])
    assert 'levir/changed/F1' in got
    # scoring class 0 as "changed": image 1 has TP 5, FP 1, FN 2
    swapped = METRICS.build(dict(type='ChangeDetectionMetric', change_index=0))
    assert evaluate(swapped, [(PRED_1, LABEL_1)])['changed/F1'] == pytest.approx(100 * 10 / 13)


def test_zero_divisions():
    # nothing predicted as changed but change labelled: precision 0 by convention, F1 0
    got = evaluate(METRICS.build(dict(type='ChangeDetectionMetric')), [([[0, 0]], [[1, 0]])])
    assert got['changed/precision'] == 0 and got['changed/recall'] == 0
    assert got['changed/F1'] == 0 and got['aAcc'] == 50
    # no change anywhere, none predicted: the changed-class values are undefined
    got = evaluate(METRICS.build(dict(type='ChangeDetectionMetric')), [([[0, 0]], [[0, 0]])])
    assert all(math.isnan(got[f'changed/{k}']) for k in ('precision', 'recall', 'F1', 'IoU'))
    assert got['aAcc'] == 100 and got['unchanged/IoU'] == 100


def test_bad_labels_and_config_are_one_line_errors():
    metric = METRICS.build(dict(type='ChangeDetectionMetric'))
    with pytest.raises(PeraDataError, match=r'label a/b\.png has values \[2\]; expected 0'):
        metric.process({}, [sample([[0, 1]], [[2, 1]], path='a/b.png')])
    with pytest.raises(PeraDataError, match='differ in shape'):
        metric.process({}, [sample([[0, 1, 1]], [[0, 1]])])
    with pytest.raises(PeraDataError, match='no image was evaluated'):
        metric.compute_metrics([])
    with pytest.raises(PeraDataError, match='every evaluated pixel is labelled ignore_index'):
        evaluate(METRICS.build(dict(type='ChangeDetectionMetric')), [([[0, 1]], [[255, 255]])])
    with pytest.raises(PeraConfigError, match='change_index must be 0 or 1'):
        METRICS.build(dict(type='ChangeDetectionMetric', change_index=2))
    with pytest.raises(PeraConfigError, match='ignore_index must not be a class label'):
        METRICS.build(dict(type='ChangeDetectionMetric', ignore_index=1))
