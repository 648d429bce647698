# Copyright (c) pera-mm contributors. All rights reserved.
"""Segmentation IoU, accuracy and F1 as first-class keys, per class and per class subset."""

import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger, print_log
from mmseg.evaluation.metrics import IoUMetric
from mmseg.registry import METRICS
from prettytable import PrettyTable

from ..utils.errors import PeraConfigError, PeraDataError


@METRICS.register_module()
class IoUF1Metric(IoUMetric):
    """MMSeg's :class:`IoUMetric` with per-class keys, F1 and class-subset means.

    The confusion areas are accumulated exactly as by ``IoUMetric`` (pixels
    whose label is ``ignore_index`` are left out), summed over the whole
    evaluation set, and turned into percentages rounded to 2 decimals:

    - ``aAcc``: correct pixels / labelled pixels;
    - ``mIoU``, ``mAcc``, ``mF1``: means over the classes, NaN classes left out;
    - ``IoU.<class>``, ``Acc.<class>``, ``F1.<class>`` for every class;
    - ``mIoU_<name>``, ``mF1_<name>`` for every subset in ``class_subsets``
      (e.g. the usual ISPRS figures without clutter).

    Per class, with I = intersection, P = predicted, L = labelled pixels:
    IoU = I / (P + L - I), Acc = I / L, F1 = 2I / (P + L). A class absent
    from both prediction and labels is NaN (left out of every mean). A class
    that is labelled but never predicted has F1 = 0; MMSeg's ``mFscore``
    computes F1 from precision I / P, which is NaN there, and so drops such
    a class from its mean.

    ``format_only`` / ``output_dir`` behave as in ``IoUMetric`` (PNGs valued
    as the dataset's raw labels, i.e. +1 under ``reduce_zero_label``); for
    LoveDA's test server use :class:`LoveDASubmissionMetric`.

    Args:
        class_subsets (dict[str, list[str]], optional): subset name ->
            class names of the dataset. Defaults to None (no subset keys).
        ignore_index (int): label value left out of the evaluation.
            Defaults to 255.
        nan_to_num (float, optional): replaces NaN per-class values (and so
            counts those classes in the means) when given. Defaults to None.
        collect_device (str): ``'cpu'`` or ``'gpu'``, as in ``BaseMetric``.
        output_dir (str, optional): as in ``IoUMetric``.
        format_only (bool): as in ``IoUMetric``.
        prefix (str, optional): as in ``BaseMetric``.
    """

    def __init__(
        self,
        class_subsets: Optional[Dict[str, Sequence[str]]] = None,
        ignore_index: int = 255,
        nan_to_num: Optional[float] = None,
        collect_device: str = 'cpu',
        output_dir: Optional[str] = None,
        format_only: bool = False,
        prefix: Optional[str] = None,
    ) -> None:
        self.class_subsets = self._check_subsets(class_subsets)
        super().__init__(
            ignore_index=ignore_index,
            iou_metrics=['mIoU', 'mFscore'],
            nan_to_num=nan_to_num,
            beta=1,
            collect_device=collect_device,
            output_dir=output_dir,
            format_only=format_only,
            prefix=prefix,
        )

    @staticmethod
    def _check_subsets(class_subsets) -> Dict[str, List[str]]:
        """Validate the form of ``class_subsets`` (names are checked against the dataset later)."""
        if class_subsets is None:
            return {}
        if not isinstance(class_subsets, dict):
            raise PeraConfigError(
                f'IoUF1Metric: class_subsets must be a dict of subset name -> list of class '
                f'names, got {type(class_subsets).__name__}'
            )
        checked = {}
        for name, classes in class_subsets.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise PeraConfigError(
                    f'IoUF1Metric: class_subsets key {name!r} must be an identifier-like '
                    'string (it becomes part of the metric names mIoU_<name>, mF1_<name>)'
                )
            if isinstance(classes, str) or not isinstance(classes, (list, tuple)) or not classes:
                raise PeraConfigError(
                    f'IoUF1Metric: class_subsets[{name!r}] must be a non-empty list of class '
                    f'names, got {classes!r}'
                )
            if len(set(classes)) != len(classes):
                raise PeraConfigError(
                    f'IoUF1Metric: class_subsets[{name!r}] lists a class twice: {list(classes)}'
                )
            checked[name] = list(classes)
        return checked

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The dataset's meta information; setting it checks the subsets' class names."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        if dataset_meta is not None and 'classes' in dataset_meta:
            self.subset_indices(dataset_meta['classes'])
        self._dataset_meta = dataset_meta

    def subset_indices(self, classes: Sequence[str]) -> Dict[str, List[int]]:
        """The class indices of every subset.

        Args:
            classes (Sequence[str]): the dataset's class names, in label order.

        Returns:
            dict[str, list[int]]: subset name -> indices into ``classes``.

        Raises:
            PeraConfigError: a subset names a class the dataset does not have.
        """
        classes = list(classes)
        indices = {}
        for name, members in self.class_subsets.items():
            unknown = [c for c in members if c not in classes]
            if unknown:
                raise PeraConfigError(
                    f'IoUF1Metric: class_subsets[{name!r}] names unknown class(es) '
                    f'{", ".join(map(repr, unknown))}; the dataset classes are {tuple(classes)}'
                )
            indices[name] = [classes.index(c) for c in members]
        return indices

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute the metrics from the per-image confusion areas.

        Args:
            results (list): ``(intersect, union, pred, label)`` area tensors per image.

        Returns:
            dict[str, float]: the keys listed in the class docstring.
        """
        if self.format_only:
            return super().compute_metrics(results)
        if not results:
            raise PeraDataError('IoUF1Metric: no image was evaluated (empty results)')
        classes = list(self.dataset_meta['classes'])
        subsets = self.subset_indices(classes)
        areas = [sum(r[i] for r in results).double().numpy() for i in range(4)]
        intersect, union, pred, label = areas
        with np.errstate(divide='ignore', invalid='ignore'):
            per_class = dict(
                IoU=intersect / union,
                Acc=intersect / label,
                F1=2 * intersect / (pred + label),
            )
            all_acc = intersect.sum() / label.sum()
        if self.nan_to_num is not None:
            per_class = {k: np.nan_to_num(v, nan=self.nan_to_num) for k, v in per_class.items()}

        def percent(value) -> float:
            return float(np.round(value * 100, 2))

        def mean(values) -> float:
            with warnings.catch_warnings():  # an all-NaN subset is NaN, without a warning
                warnings.simplefilter('ignore', RuntimeWarning)
                return float(np.nanmean(values))

        metrics = dict(aAcc=percent(all_acc))
        for key, values in per_class.items():
            metrics[f'm{key}'] = percent(mean(values))
        for key, values in per_class.items():
            for name, value in zip(classes, values):
                metrics[f'{key}.{name}'] = percent(value)
        for subset, idx in subsets.items():
            for key in ('IoU', 'F1'):
                metrics[f'm{key}_{subset}'] = percent(mean(per_class[key][idx]))

        table = PrettyTable()
        table.add_column('Class', classes)
        for key in per_class:
            table.add_column(key, [metrics[f'{key}.{name}'] for name in classes])
        logger: MMLogger = MMLogger.get_current_instance()
        print_log('per class results:\n' + table.get_string(), logger=logger)
        return metrics
