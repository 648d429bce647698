# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM's regulariser: hold the mean patch cosine similarity at a target."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS


def mean_patch_similarity(x: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over all patch pairs of each image, diagonal included.

    Args:
        x (Tensor): (B, n, C).

    Returns:
        Tensor: scalar in at least fp32, the mean over the B * n * n pairs.
    """
    xn = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)
    return (xn @ xn.transpose(1, 2)).mean()


@MODELS.register_module()
class SimilarityTargetLoss(nn.Module):
    """``loss_weight * (S(x) - target)^2`` with S the mean patch cosine similarity.

    The target follows a schedule (0.75 -> 0.25 by cosine in the reference,
    set each iteration by ``LatentMIMScheduleHook``), so it is an argument.

    Args:
        loss_weight (float): coefficient (``avg_sim_coeff``). Defaults to 0.1.
    """

    def __init__(self, loss_weight: float = 0.1):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, x: torch.Tensor, target: float):
        """(loss, S(x)) of the patch features ``x`` (B, n, C)."""
        sim = mean_patch_similarity(x)
        return self.loss_weight * (sim - target) ** 2, sim
