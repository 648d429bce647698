# Copyright (c) pera-mm contributors. All rights reserved.
"""The closed-form ridge probe against a NumPy solution of the same problem."""

import numpy as np
import pytest
import torch

from pera_mm.evaluation import ridge_probe_scores, ridge_probe_top1
from pera_mm.utils.errors import PeraConfigError, PeraDataError


def numpy_ridge_scores(bank, bank_y, query, lam):
    """min ||Z W + 1 b - Y||^2 + n lam ||W||^2 (b free), solved with the bias as a variable."""
    mean, std = bank.mean(0), bank.std(0)
    z, zq = (bank - mean) / std, (query - mean) / std
    n, d = z.shape
    y = np.eye(bank_y.max() + 1)[bank_y]
    a = np.hstack([z, np.ones((n, 1))])
    penalty = np.diag([n * lam] * d + [0.0])  # the intercept is not penalised
    wb = np.linalg.solve(a.T @ a + penalty, a.T @ y)
    return np.hstack([zq, np.ones((len(zq), 1))]) @ wb


@pytest.mark.parametrize('lam', [1.0, 0.01])
def test_scores_equal_the_numpy_closed_form(lam):
    rng = np.random.RandomState(0)
    centres = rng.randn(4, 12) * 2
    bank_y, query_y = np.repeat(np.arange(4), 6), np.repeat(np.arange(4), 5)
    bank = centres[bank_y] + rng.randn(24, 12) * 4 + 5.0
    query = centres[query_y] + rng.randn(20, 12) * 4 + 5.0
    expected = numpy_ridge_scores(bank, bank_y, query, lam)
    scores = ridge_probe_scores(torch.tensor(bank), torch.tensor(bank_y), torch.tensor(query), lam)
    np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-9, atol=1e-10)
    top1 = 100.0 * np.mean(expected.argmax(1) == query_y)
    assert ridge_probe_top1(bank, bank_y, query, query_y, lam) == pytest.approx(top1)
    assert 25.0 < top1 < 100.0  # a case where the probe is neither trivial nor perfect


def test_more_dimensions_than_bank_samples_still_solve():
    # the protocol's bank (150 AID images) is smaller than a ViT-B width (768)
    rng = np.random.RandomState(1)
    bank, query = rng.randn(10, 40), rng.randn(6, 40)
    bank_y = np.arange(10) % 3
    expected = numpy_ridge_scores(bank, bank_y, query, 1.0)
    np.testing.assert_allclose(
        ridge_probe_scores(bank, bank_y, query).numpy(), expected, rtol=1e-9, atol=1e-10
    )


def test_bad_input():
    with pytest.raises(PeraConfigError, match='ridge_lambda must be > 0'):
        ridge_probe_top1(np.ones((2, 2)), [0, 1], np.ones((1, 2)), [0], ridge_lambda=0)
    with pytest.raises(PeraDataError, match='empty'):
        ridge_probe_top1(np.ones((2, 2)), [0, 1], np.ones((0, 2)), [], ridge_lambda=1)
    with pytest.raises(PeraDataError, match='2 bank features but 3 labels'):
        ridge_probe_top1(np.ones((2, 2)), [0, 1, 1], np.ones((1, 2)), [0])
