# Copyright (c) pera-mm contributors. All rights reserved.
"""Statistics of a batch of features that tell a collapsed representation apart."""

import torch
import torch.nn.functional as F


def mean_pairwise_cosine(features: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over distinct pairs of rows (N, C); near 1 means collapse."""
    f = F.normalize(features.float(), dim=-1)
    n = f.shape[0]
    sim = f @ f.t()
    return (sim.sum() - sim.diagonal().sum()) / max(n * (n - 1), 1)
