# Copyright (c) pera-mm contributors. All rights reserved.
"""VOC area AP (MMDet's VOCMetric) and our COCO-style AP on hand-built cases with known values."""

import pytest
import torch
from mmdet.evaluation import VOCMetric
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

import pera_mm  # noqa: F401
from pera_mm.evaluation import CocoStyleAPMetric
from pera_mm.utils import PeraConfigError

CLASSES = ('a', 'b', 'c')


def _boxes(values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 4)


def _sample(gt, gt_labels, ignored, ignored_labels, dets, scores, det_labels):
    s = DetDataSample()
    s.gt_instances = InstanceData(bboxes=_boxes(gt), labels=torch.tensor(gt_labels).long())
    s.ignored_instances = InstanceData(
        bboxes=_boxes(ignored), labels=torch.tensor(ignored_labels).long()
    )
    s.pred_instances = InstanceData(
        bboxes=_boxes(dets),
        scores=torch.tensor(scores, dtype=torch.float32),
        labels=torch.tensor(det_labels).long(),
    )
    return s.to_dict()


def _evaluate(metric, samples, classes=CLASSES):
    metric.dataset_meta = dict(classes=classes)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def hand_case():
    """Class a: 2 boxes; detections TP (0.9), FP (0.8), TP (0.7), all exact or far away.
    Class b: 1 box and 1 difficult (ignored) box, each detected exactly (the ignored one with
    the top score). Class c: no ground truth, one detection.

    Class a: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
      VOC area AP: 1/2 * 1 + 1/2 * 2/3 = 5/6.
      COCO 101-point AP: recall points 0.00..0.50 (51) at 1, 0.51..1.00 (50) at 2/3,
      (51 + 50 * 2/3) / 101, the same at every IoU threshold (exact matches).
    Class b: AP 1 in both modes; class c is left out of the means.
    """
    return [
        _sample(
            gt=[[10, 10, 29, 29], [50, 50, 69, 69], [70, 10, 89, 29]],
            gt_labels=[0, 0, 1],
            ignored=[[0, 0, 9, 9]],
            ignored_labels=[1],
            dets=[
                [10, 10, 29, 29],
                [80, 80, 95, 95],
                [50, 50, 69, 69],
                [0, 0, 9, 9],
                [70, 10, 89, 29],
                [30, 30, 40, 40],
            ],
            scores=[0.9, 0.8, 0.7, 0.95, 0.6, 0.5],
            det_labels=[0, 0, 0, 1, 1, 2],
        )
    ]


VOC_AREA_MAP = (5 / 6 + 1) / 2
COCO_MAP = ((51 + 50 * 2 / 3) / 101 + 1) / 2


def test_voc_area_map_of_the_hand_case():
    metrics = _evaluate(VOCMetric(eval_mode='area', prefix='voc_area'), hand_case())
    assert set(metrics) == {'voc_area/mAP', 'voc_area/AP50'}
    assert metrics['voc_area/mAP'] == pytest.approx(VOC_AREA_MAP, abs=1e-6)
    assert metrics['voc_area/AP50'] == round(VOC_AREA_MAP, 3)
    # MMDet's default 11-point AP differs: class a, recall 0.0..0.5 (6 points) at 1,
    # 0.6..1.0 (5) at 2/3
    eleven = _evaluate(VOCMetric(), hand_case())
    assert eleven['pascal_voc/mAP'] == pytest.approx(((6 + 5 * 2 / 3) / 11 + 1) / 2, abs=1e-6)


def test_coco_style_ap_of_the_hand_case():
    metrics = _evaluate(CocoStyleAPMetric(classwise=True), hand_case())
    for key in ('coco/AP', 'coco/AP50', 'coco/AP75', 'coco/AP_small'):
        assert metrics[key] == pytest.approx(COCO_MAP, abs=1e-9), key
    assert metrics['coco/AP_medium'] == metrics['coco/AP_large'] == -1.0  # no such boxes
    assert metrics['coco/AP_a'] == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-9)
    assert metrics['coco/AP_b'] == pytest.approx(1.0) and metrics['coco/AP_c'] == -1.0


def test_coco_style_ap_uses_the_inclusive_pixel_convention_of_voc_metric():
    """GT [0, 0, 5, 5], detection [1, 0, 6, 5].

    Inclusive pixels (VOCMetric's +1): 6 x 6 boxes, intersection 5 x 6 = 30, IoU 30 / 42 =
    0.714: a match at IoU 0.50..0.70 (5 of the 10 thresholds), COCO AP 0.5. With widths
    x2 - x1 (MMDet's CocoMetric): 5 x 5 boxes, 4 x 5 = 20, IoU 20 / 30 = 0.667: 4 of 10, AP 0.4.
    """
    case = [_sample([[0, 0, 5, 5]], [0], [], [], [[1, 0, 6, 5]], [0.9], [0])]
    legacy = _evaluate(CocoStyleAPMetric(), case, classes=('a',))
    plain = _evaluate(CocoStyleAPMetric(legacy_coordinate=False), case, classes=('a',))
    voc = _evaluate(VOCMetric(eval_mode='area', iou_thrs=[0.5, 0.7, 0.75]), case, ('a',))
    assert legacy['coco/AP'] == pytest.approx(0.5) and plain['coco/AP'] == pytest.approx(0.4)
    assert legacy['coco/AP50'] == pytest.approx(1.0) and legacy['coco/AP75'] == 0.0
    # VOCMetric agrees with the legacy convention at each threshold
    voc_aps = [voc[f'pascal_voc/AP{t}'] for t in (50, 70, 75)]
    assert voc_aps == pytest.approx([1.0, 1.0, 0.0])


def test_no_detections_and_max_dets():
    case = [_sample([[0, 0, 9, 9]], [0], [], [], [], [], [])]
    metrics = _evaluate(CocoStyleAPMetric(), case, classes=('a',))
    assert metrics['coco/AP'] == 0.0 and metrics['coco/AP50'] == 0.0
    # max_dets: 3 detections by score, only the lowest-scored one is correct
    case = [
        _sample(
            [[0, 0, 9, 9]],
            [0],
            [],
            [],
            [[50, 50, 59, 59], [70, 70, 79, 79], [0, 0, 9, 9]],
            [0.9, 0.8, 0.7],
            [0, 0, 0],
        )
    ]
    assert _evaluate(CocoStyleAPMetric(max_dets=2), case, ('a',))['coco/AP50'] == 0.0
    # all three kept: precision 1/3 at recall 1 -> AP 1/3 at every recall point
    assert _evaluate(CocoStyleAPMetric(max_dets=3), case, ('a',))['coco/AP50'] == pytest.approx(
        1 / 3
    )
    with pytest.raises(PeraConfigError, match='max_dets must be a positive int'):
        CocoStyleAPMetric(max_dets=0)
