# Copyright (c) pera-mm contributors. All rights reserved.
"""The fixed representation-quality protocol as an MMEngine metric."""

from typing import Dict, List, Optional, Sequence

import torch
from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..utils.errors import PeraConfigError, PeraDataError
from .bank_query_dataset import BANK, QUERY
from .knn_protocol import weighted_knn_top1
from .ridge_probe import RIDGE_LAMBDA, ridge_probe_top1


def protocol_scores(
    bank_feats,
    bank_labels,
    query_feats,
    query_labels,
    ks: Sequence[int] = (20, 1),
    temperature: float = 0.07,
    ridge_lambda: Optional[float] = RIDGE_LAMBDA,
) -> Dict[str, float]:
    """``knn_top1_k<k>`` for each ``k`` and ``linear_top1`` (percent) of one bank/query split.

    ``ridge_lambda=None`` leaves the linear probe out.
    """
    scores = {
        f'knn_top1_k{k}': weighted_knn_top1(
            bank_feats, bank_labels, query_feats, query_labels, k=k, temperature=temperature
        )
        for k in ks
    }
    if ridge_lambda is not None:
        scores['linear_top1'] = ridge_probe_top1(
            bank_feats, bank_labels, query_feats, query_labels, ridge_lambda
        )
    return scores


@METRICS.register_module()
class BankQueryKNNMetric(BaseMetric):
    """Weighted kNN top-1 (each ``k``) and the ridge probe on frozen features.

    Expects from the evaluation loop one dict per sample with ``feat`` (C,),
    ``gt_label`` and ``split`` (``'bank'``/``'query'``), as
    :class:`FeatureKNNValLoop` produces. Keys: ``knn_top1_k20``,
    ``knn_top1_k1``, ``linear_top1`` under ``prefix`` (the loop sets the
    evaluation set's name, e.g. ``aid/knn_top1_k20``).

    Args:
        ks (Sequence[int]): neighbour counts. Defaults to (20, 1).
        temperature (float): vote temperature. Defaults to 0.07.
        ridge_lambda (float, optional): ridge strength of the linear probe (see
            :func:`ridge_probe_top1`); None leaves it out. Defaults to 1.0.
        collect_device (str): 'cpu' or 'gpu' for gathering across ranks.
        prefix (str, optional): key prefix.
    """

    default_prefix = 'knn'

    def __init__(
        self,
        ks: Sequence[int] = (20, 1),
        temperature: float = 0.07,
        ridge_lambda: Optional[float] = RIDGE_LAMBDA,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not ks or any(int(k) < 1 for k in ks):
            raise PeraConfigError(f'BankQueryKNNMetric: ks must be positive ints, got {ks}')
        self.ks, self.temperature, self.ridge_lambda = (
            tuple(int(k) for k in ks),
            temperature,
            ridge_lambda,
        )

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's feature (on the CPU), label and split."""
        for sample in data_samples:
            self.results.append(
                dict(
                    feat=sample['feat'].detach().float().cpu(),
                    gt_label=int(sample['gt_label']),
                    split=sample['split'],
                )
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """The protocol's scores over the collected bank and query samples."""
        parts = {BANK: [], QUERY: []}
        for r in results:
            if r['split'] not in parts:
                raise PeraDataError(
                    f"BankQueryKNNMetric: sample split {r['split']!r}, expected 'bank' or 'query'"
                )
            parts[r['split']].append(r)
        for name, part in parts.items():
            if not part:
                raise PeraDataError(f'BankQueryKNNMetric ({self.prefix}): no {name} samples')
        bank, query = parts[BANK], parts[QUERY]
        return protocol_scores(
            torch.stack([r['feat'] for r in bank]),
            torch.tensor([r['gt_label'] for r in bank]),
            torch.stack([r['feat'] for r in query]),
            torch.tensor([r['gt_label'] for r in query]),
            self.ks,
            self.temperature,
            self.ridge_lambda,
        )
