import pytest
import torch

from pera_mm.evaluation import knn_leave_one_out, mean_pairwise_cosine


def brute_force_knn(features, labels, k):
    f = torch.nn.functional.normalize(features, dim=-1)
    correct = 0
    for i in range(len(f)):
        sims = sorted(((float(f[i] @ f[j]), j) for j in range(len(f)) if j != i), reverse=True)[:k]
        votes = {}
        for rank, (_, j) in enumerate(sims):
            votes[int(labels[j])] = votes.get(int(labels[j]), 0) + 1 + (0.5 if rank == 0 else 0)
        correct += max(votes, key=votes.get) == int(labels[i])
    return correct / len(f)


def test_knn_matches_brute_force_and_separates_clusters():
    torch.manual_seed(0)
    labels = torch.arange(4).repeat_interleave(6)
    centres = torch.randn(4, 16) * 3
    feats = centres[labels] + torch.randn(24, 16)
    assert knn_leave_one_out(feats, labels, 5) == pytest.approx(brute_force_knn(feats, labels, 5))
    assert knn_leave_one_out(feats, labels, 5) > 0.9
    noise = torch.randn(24, 16)
    assert knn_leave_one_out(noise, labels, 5) == pytest.approx(brute_force_knn(noise, labels, 5))


def test_knn_rejects_bad_k():
    with pytest.raises(ValueError, match='k must be in'):
        knn_leave_one_out(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), 5)


def test_mean_pairwise_cosine_detects_collapse():
    same = torch.ones(6, 8)
    assert mean_pairwise_cosine(same) == pytest.approx(1.0)
    orth = torch.eye(6)
    assert mean_pairwise_cosine(orth) == pytest.approx(0.0)
