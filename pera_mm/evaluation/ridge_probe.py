# Copyright (c) pera-mm contributors. All rights reserved.
"""Closed-form ridge (least-squares) linear probe: the protocol's linear score.

A linear read-out with no training loop, learning rate or seed: one solve on
the bank, scored on the queries, so every method gets exactly the same probe.
"""

import torch

from ..utils.errors import PeraConfigError, PeraDataError

#: Ridge strength of the protocol (per bank sample, on standardised features).
RIDGE_LAMBDA = 1.0


def standardise(bank: torch.Tensor, query: torch.Tensor, eps: float = 1e-6):
    """Z-score both sets per dimension with the bank's mean and std (population)."""
    mean = bank.mean(0, keepdim=True)
    std = bank.std(0, unbiased=False, keepdim=True).clamp_min(eps)
    return (bank - mean) / std, (query - mean) / std


def ridge_probe_scores(
    bank_feats, bank_labels, query_feats, ridge_lambda: float = RIDGE_LAMBDA, num_classes=None
) -> torch.Tensor:
    """Class scores ``(M, K)`` of the queries under a one-vs-all ridge fit on the bank.

    Features are standardised per dimension with the bank's statistics, the
    targets are one-hot (one column per class, 1 for the class, 0 otherwise)
    and the intercept is not penalised (bank-centred features and targets):

        W = (Xc^T Xc + n * lambda * I)^-1 Xc^T Yc,  scores = (Xq - mean(X)) W + mean(Y),

    with ``n`` the number of bank samples, so ``lambda`` means the same for any
    bank size.

    Args:
        bank_feats, query_feats: ``(N, C)`` and ``(M, C)`` features.
        bank_labels: ``(N,)`` integer labels.
        ridge_lambda: regularisation strength, ``> 0``.
        num_classes (int, optional): score columns; default ``max(label) + 1``.
    """
    if not ridge_lambda > 0:
        raise PeraConfigError(f'ridge probe: ridge_lambda must be > 0, got {ridge_lambda}')
    bank = torch.as_tensor(bank_feats).to(torch.float64)
    query = torch.as_tensor(query_feats).to(torch.float64)
    bank_y = torch.as_tensor(bank_labels).long().flatten()
    if bank.ndim != 2 or query.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise PeraDataError(
            f'ridge probe: features must be (N, C) and (M, C), got '
            f'{tuple(bank.shape)} and {tuple(query.shape)}'
        )
    if bank.shape[0] == 0 or query.shape[0] == 0:
        raise PeraDataError('ridge probe: the bank or the query set is empty')
    if bank.shape[0] != bank_y.numel():
        raise PeraDataError(
            f'ridge probe: {bank.shape[0]} bank features but {bank_y.numel()} labels'
        )
    bank, query = standardise(bank, query)
    num_classes = int(bank_y.max()) + 1 if num_classes is None else int(num_classes)
    targets = torch.nn.functional.one_hot(bank_y, num_classes).to(torch.float64)
    x_mean, y_mean = bank.mean(0, keepdim=True), targets.mean(0, keepdim=True)
    xc, yc = bank - x_mean, targets - y_mean
    n, dims = bank.shape
    gram = xc.t() @ xc + n * ridge_lambda * torch.eye(dims, dtype=torch.float64)
    weights = torch.linalg.solve(gram, xc.t() @ yc)
    return (query - x_mean) @ weights + y_mean


def ridge_probe_top1(
    bank_feats, bank_labels, query_feats, query_labels, ridge_lambda: float = RIDGE_LAMBDA
) -> float:
    """Top-1 accuracy (percent) of the ridge probe (:func:`ridge_probe_scores`).

    The predicted class is the argmax of the scores (an exact tie goes to the
    lower label).

    Returns:
        float: percentage of correctly classified queries, in ``[0, 100]``.
    """
    query_y = torch.as_tensor(query_labels).long().flatten()
    if torch.as_tensor(query_feats).shape[0] != query_y.numel():
        raise PeraDataError(
            f'ridge probe: {torch.as_tensor(query_feats).shape[0]} query features but '
            f'{query_y.numel()} labels'
        )
    bank_y = torch.as_tensor(bank_labels).long().flatten()
    if bank_y.numel() == 0 or query_y.numel() == 0:
        raise PeraDataError('ridge probe: the bank or the query set is empty')
    num_classes = int(max(bank_y.max(), query_y.max())) + 1
    scores = ridge_probe_scores(bank_feats, bank_labels, query_feats, ridge_lambda, num_classes)
    return (scores.argmax(1) == query_y).double().mean().item() * 100.0
