# Copyright (c) pera-mm contributors. All rights reserved.
"""Change-detection metrics of the CHANGE class as first-class keys."""

import math
from typing import Dict, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS

from ..utils.errors import PeraConfigError, PeraDataError


@METRICS.register_module()
class ChangeDetectionMetric(BaseMetric):
    """Precision, recall, F1 and IoU of the changed class, plus overall accuracy.

    MMSeg's ``IoUMetric`` reports class means, which mix the (dominant) unchanged class
    into every figure; change-detection papers (BIT, the PerA paper's LEVIR-CD F1 92.34)
    report the changed class alone. The confusion counts of the changed class
    (``change_index``, 1 by default) are summed over the whole evaluation set (pixels
    labelled ``ignore_index`` are left out), then, in percent (values in [0, 100], not
    rounded):

    - ``changed/precision`` = TP / (TP + FP), ``changed/recall`` = TP / (TP + FN),
    - ``changed/F1`` = 2 TP / (2 TP + FP + FN) (= 2PR / (P + R)),
    - ``changed/IoU`` = TP / (TP + FP + FN),
    - ``unchanged/IoU`` = TN / (TN + FP + FN) and ``mIoU``, their mean (the figure MMSeg's
      ``IoUMetric`` would give for two classes),
    - ``aAcc`` = (TP + TN) / labelled pixels (overall accuracy, MMSeg's key name).

    A precision (recall) whose denominator is 0 (nothing predicted (labelled) as changed)
    is 0, as scikit-learn's default. When no pixel is either labelled or predicted as
    changed, the four ``changed/*`` values are undefined and reported as NaN (logged as a
    warning). Use e.g. ``save_best='changed/F1'`` in the checkpoint hook.

    Args:
        change_index (int): label value of the changed class (1; 0 to score the other
            class as "changed"). Labels must be 0, 1 or ``ignore_index`` (0/255 masks are
            converted to 0/1 when loading).
        ignore_index (int): label value left out of the evaluation.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        prefix (str, optional): as in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(
        self,
        change_index: int = 1,
        ignore_index: int = 255,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if change_index not in (0, 1) or isinstance(change_index, bool):
            raise PeraConfigError(
                f'ChangeDetectionMetric: change_index must be 0 or 1, got {change_index!r}'
            )
        if ignore_index in (0, 1):
            raise PeraConfigError(
                f'ChangeDetectionMetric: ignore_index must not be a class label (0 or 1), got '
                f'{ignore_index!r}'
            )
        self.change_index = change_index
        self.ignore_index = ignore_index

    def confusion(self, pred: torch.Tensor, label: torch.Tensor, name: str = '') -> torch.Tensor:
        """Changed-class counts ``[TP, FP, FN, TN]`` (int64) of one prediction.

        Args:
            pred (Tensor): predicted class per pixel (H, W).
            label (Tensor): labelled class per pixel (H, W); ``ignore_index`` is skipped.
            name (str): the sample's file, for error messages.

        Returns:
            Tensor: the four counts.
        """
        if pred.shape != label.shape:
            raise PeraDataError(
                f'ChangeDetectionMetric: prediction {tuple(pred.shape)} and label '
                f'{tuple(label.shape)} differ in shape{f" for {name}" if name else ""}'
            )
        valid = label != self.ignore_index
        stray = valid & (label != 0) & (label != 1)
        if stray.any():
            values = sorted(int(v) for v in label[stray].unique()[:5])
            raise PeraDataError(
                f'ChangeDetectionMetric: label{f" {name}" if name else ""} has values '
                f'{values}; expected 0 (unchanged), 1 (changed) or {self.ignore_index} (ignored)'
            )
        pred_changed = (pred == self.change_index) & valid
        label_changed = (label == self.change_index) & valid
        tp = (pred_changed & label_changed).sum()
        fp = (pred_changed & ~label_changed).sum()
        fn = (~pred_changed & label_changed).sum()
        tn = valid.sum() - tp - fp - fn
        return torch.stack([tp, fp, fn, tn]).to(torch.int64).cpu()

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Accumulate the confusion counts of a batch of predictions."""
        for sample in data_samples:
            pred = sample['pred_sem_seg']['data'].squeeze()
            label = sample['gt_sem_seg']['data'].squeeze().to(pred.device)
            name = sample.get('seg_map_path') or sample.get('img_path') or ''
            self.results.append(self.confusion(pred, label, str(name)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """The metrics from the summed counts (see the class docstring)."""
        if not results:
            raise PeraDataError('ChangeDetectionMetric: no image was evaluated (empty results)')
        tp, fp, fn, tn = (int(v) for v in torch.stack(list(results)).sum(0))
        total = tp + fp + fn + tn
        if total == 0:
            raise PeraDataError(
                'ChangeDetectionMetric: every evaluated pixel is labelled ignore_index '
                f'({self.ignore_index})'
            )

        def ratio(num: int, den: int, undefined: float = 0.0) -> float:
            return 100.0 * num / den if den else undefined

        logger: MMLogger = MMLogger.get_current_instance()
        if tp + fp + fn == 0:
            nan = math.nan
            changed = dict(precision=nan, recall=nan, F1=nan, IoU=nan)
            print_log(
                'ChangeDetectionMetric: no pixel is labelled or predicted as changed; the '
                'changed-class metrics are undefined (NaN)',
                logger=logger,
                level=30,
            )
        else:
            changed = dict(
                precision=ratio(tp, tp + fp),
                recall=ratio(tp, tp + fn),
                F1=ratio(2 * tp, 2 * tp + fp + fn),
                IoU=ratio(tp, tp + fp + fn),
            )
        unchanged_iou = ratio(tn, tn + fp + fn, math.nan)
        metrics = {f'changed/{k}': v for k, v in changed.items()}
        metrics['unchanged/IoU'] = unchanged_iou
        metrics['mIoU'] = (changed['IoU'] + unchanged_iou) / 2
        metrics['aAcc'] = ratio(tp + tn, total)
        print_log(
            f'change detection: TP {tp}, FP {fp}, FN {fn}, TN {tn}; '
            + ', '.join(f'{k} {v:.2f}' for k, v in metrics.items()),
            logger=logger,
        )
        return metrics
