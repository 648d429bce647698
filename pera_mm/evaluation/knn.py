import torch
import torch.nn.functional as F

from ..models.utils.feature_stats import mean_pairwise_cosine as pair_cosine


def knn_leave_one_out(features, labels, k=5):
    """Leave-one-out k-nearest-neighbour accuracy under cosine similarity.

    Each sample is classified by a majority vote of its ``k`` most similar other
    samples (ties go to the most similar neighbour's class). A quick probe of
    representation quality that needs no training, used to spot collapse.
    """
    if features.shape[0] != labels.shape[0]:
        raise ValueError(
            f'knn_leave_one_out: {features.shape[0]} features but {labels.shape[0]} labels'
        )
    if not 0 < k < features.shape[0]:
        raise ValueError(f'knn_leave_one_out: k must be in [1, {features.shape[0] - 1}], got {k}')
    f = F.normalize(features.float(), dim=-1)
    sim = f @ f.t()
    sim.fill_diagonal_(-float('inf'))
    nn_idx = sim.topk(k, dim=1).indices
    votes = F.one_hot(labels[nn_idx], int(labels.max()) + 1).float().sum(1)
    # tie-break towards the nearest neighbour's class
    votes[torch.arange(len(labels)), labels[nn_idx[:, 0]]] += 0.5
    return (votes.argmax(1) == labels).float().mean().item()


def mean_pairwise_cosine(features) -> float:
    """Mean cosine similarity over distinct pairs; near 1 means collapsed features."""
    return pair_cosine(features).item()
