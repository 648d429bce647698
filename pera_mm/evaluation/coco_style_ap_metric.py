# Copyright (c) pera-mm contributors. All rights reserved.
"""COCO-style box AP (IoU 0.50:0.95, 101-point) from a dataset's own boxes, offline."""

import contextlib
import io
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ..utils.errors import PeraConfigError

#: the keys (after the prefix) and what they are
COCO_STYLE_KEYS = OrderedDict(
    AP='AP @ IoU 0.50:0.95, all areas',
    AP50='AP @ IoU 0.50',
    AP75='AP @ IoU 0.75',
    AP_small='AP @ IoU 0.50:0.95, area < 32^2',
    AP_medium='AP @ IoU 0.50:0.95, 32^2 <= area < 96^2',
    AP_large='AP @ IoU 0.50:0.95, area >= 96^2',
)


def _pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as err:  # pragma: no cover - mmdet depends on pycocotools
        raise PeraConfigError(
            'CocoStyleAPMetric needs pycocotools (pip install pycocotools)'
        ) from err
    return COCO, COCOeval


def _coco_annotation(ann_id: int, img_id: int, label, box: List[float], **extra) -> dict:
    """One COCO annotation of an ``[x, y, w, h]`` box (``extra``: iscrowd, score)."""
    return dict(
        id=ann_id, image_id=img_id, category_id=int(label), bbox=box, area=box[2] * box[3], **extra
    )


@METRICS.register_module()
class CocoStyleAPMetric(BaseMetric):
    """COCO-style box AP computed by pycocotools from the samples' own boxes.

    MMDet's ``CocoMetric`` needs a COCO json file, or converts the dataset's raw
    ``instances`` (not packed by default) with widths ``x2 - x1``. This metric
    reads the ground truth that ``VOCMetric`` reads (``gt_instances`` and
    ``ignored_instances`` of each sample, in original-image coordinates), builds
    the COCO ground truth and detections in memory and runs pycocotools'
    ``COCOeval`` (101 recall points, IoU 0.50:0.95 in steps of 0.05, area ranges
    32^2 / 96^2, ``max_dets`` detections per image). No file is written or read.

    Pixel convention. With ``legacy_coordinate=True`` (default) boxes are
    inclusive pixel indices, as MMDet's VOC datasets and ``VOCMetric``: a box
    ``[x1, y1, x2, y2]`` becomes ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]``, so the
    IoUs and areas equal ``VOCMetric``'s and the two AP modes differ only in how
    precision is integrated. ``False`` gives MMDet ``CocoMetric``'s widths
    ``x2 - x1``.

    Ignored ground truth (``ignored_instances``, e.g. DIOR/VOC ``difficult``) is
    passed as ``iscrowd=1``: detections matched to it count neither as true nor
    as false positives. (pycocotools measures the overlap with a crowd box as
    intersection over the detection's area, where ``VOCMetric`` uses the IoU.)
    Classes without ground truth are left out of the means, as in both
    ``VOCMetric`` and ``COCOeval``.

    Keys (``prefix`` default ``'coco'``): ``coco/AP``, ``coco/AP50``,
    ``coco/AP75``, ``coco/AP_small``, ``coco/AP_medium``, ``coco/AP_large``
    (fractions in [0, 1]; -1 where no ground truth falls in the range), and
    ``coco/AP_<class>`` per class with ``classwise=True``.

    Args:
        max_dets (int): detections per image taken by score. Defaults to 100
            (COCO's standard; set 200 to score all of a 200-per-image test setting).
        legacy_coordinate (bool): inclusive-pixel widths (``+ 1``). Defaults to True.
        classwise (bool): also report the AP of every class. Defaults to False.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        prefix (str, optional): key prefix. Defaults to ``'coco'``.
    """

    default_prefix: Optional[str] = 'coco'

    def __init__(
        self,
        max_dets: int = 100,
        legacy_coordinate: bool = True,
        classwise: bool = False,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not isinstance(max_dets, int) or max_dets < 1:
            raise PeraConfigError(
                f'CocoStyleAPMetric: max_dets must be a positive int, got {max_dets!r}'
            )
        _pycocotools()
        self.max_dets = max_dets
        self.extra = 1.0 if legacy_coordinate else 0.0
        self.classwise = classwise

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's ground truth and predictions as numpy arrays.

        Args:
            data_batch: unused.
            data_samples (Sequence[dict]): packed samples with ``gt_instances``,
                ``ignored_instances`` and ``pred_instances``.
        """
        for sample in data_samples:
            gt, ignored, pred = (
                sample['gt_instances'],
                sample['ignored_instances'],
                sample['pred_instances'],
            )
            self.results.append(
                dict(
                    gt_bboxes=gt['bboxes'].cpu().numpy().reshape(-1, 4),
                    gt_labels=gt['labels'].cpu().numpy(),
                    ignored_bboxes=ignored['bboxes'].cpu().numpy().reshape(-1, 4),
                    ignored_labels=ignored['labels'].cpu().numpy(),
                    bboxes=pred['bboxes'].cpu().numpy().reshape(-1, 4),
                    scores=pred['scores'].cpu().numpy(),
                    labels=pred['labels'].cpu().numpy(),
                )
            )

    def _xywh(self, boxes: np.ndarray) -> List[List[float]]:
        boxes = boxes.astype(np.float64)
        wh = boxes[:, 2:] - boxes[:, :2] + self.extra
        return np.concatenate([boxes[:, :2], wh], axis=1).tolist()

    def _coco_dicts(self, results: list, num_classes: int):
        images = [dict(id=i) for i in range(len(results))]
        categories = [dict(id=c) for c in range(num_classes)]
        gts, dts = [], []
        for img_id, r in enumerate(results):
            for boxes, labels, crowd in (
                (r['gt_bboxes'], r['gt_labels'], 0),
                (r['ignored_bboxes'], r['ignored_labels'], 1),
            ):
                for box, label in zip(self._xywh(boxes), labels):
                    gts.append(_coco_annotation(len(gts) + 1, img_id, label, box, iscrowd=crowd))
            for box, score, label in zip(self._xywh(r['bboxes']), r['scores'], r['labels']):
                dts.append(
                    _coco_annotation(
                        len(dts) + 1, img_id, label, box, score=float(score), iscrowd=0
                    )
                )
        base = dict(images=images, categories=categories)
        return dict(base, annotations=gts), dict(base, annotations=dts)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Run ``COCOeval`` on the collected samples.

        Args:
            results (list): what :meth:`process` kept.

        Returns:
            dict[str, float]: the keys of the class docstring (without prefix).
        """
        COCO, COCOeval = _pycocotools()
        logger = MMLogger.get_current_instance()
        classes = list(self.dataset_meta['classes'])
        gt_json, dt_json = self._coco_dicts(results, len(classes))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            coco_gt, coco_dt = COCO(), COCO()
            coco_gt.dataset, coco_dt.dataset = gt_json, dt_json
            coco_gt.createIndex()
            coco_dt.createIndex()
            evaluator = COCOeval(coco_gt, coco_dt, iouType='bbox')
            evaluator.params.maxDets = [self.max_dets]  # COCOeval sorts this list
            evaluator.evaluate()
            evaluator.accumulate()
        # precision: [IoU thresholds, recall points, classes, area ranges, max dets]
        precision = evaluator.eval['precision'][..., -1]
        iou_thrs = evaluator.params.iouThrs

        def mean_ap(p: np.ndarray) -> float:
            valid = p[p > -1]
            return float(valid.mean()) if valid.size else -1.0

        at = {thr: int(np.argmin(np.abs(iou_thrs - thr))) for thr in (0.5, 0.75)}
        metrics = OrderedDict(
            AP=mean_ap(precision[:, :, :, 0]),
            AP50=mean_ap(precision[at[0.5], :, :, 0]),
            AP75=mean_ap(precision[at[0.75], :, :, 0]),
            AP_small=mean_ap(precision[:, :, :, 1]),
            AP_medium=mean_ap(precision[:, :, :, 2]),
            AP_large=mean_ap(precision[:, :, :, 3]),
        )
        lines = [
            f'COCO-style box AP (pycocotools, max {self.max_dets} dets/image, '
            f'{"inclusive-pixel (+1)" if self.extra else "x2 - x1"} widths):'
        ]
        lines += [f'  {k:<10} {v:.4f}  ({COCO_STYLE_KEYS[k]})' for k, v in metrics.items()]
        if self.classwise:
            for c, name in enumerate(classes):
                metrics[f'AP_{name}'] = mean_ap(precision[:, :, c, 0])
                lines.append(f'  AP_{name:<24} {metrics[f"AP_{name}"]:.4f}')
        logger.info('\n'.join(lines))
        return metrics
