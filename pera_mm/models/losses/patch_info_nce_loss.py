# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM's patch-level InfoNCE between predicted and target latents."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class PatchInfoNCELoss(nn.Module):
    """InfoNCE over the patches of each image, scaled by ``2 * tau``.

    Predictions are standardised over the patches of each image, per feature
    (``(x - mean) / (std + std_eps)``, unbiased std); targets are not. Both are
    L2-normalised; ``logits = z t^T / tau`` (B, n, n); cross-entropy with each
    prediction's own target as the label, averaged over all B * n rows, so the
    negatives are the other target patches of the same image. Computed in at
    least fp32 (also under bf16 autocast: the standardisation amplifies rounding).

    Args:
        tau (float): temperature. Defaults to 0.2.
        std_eps (float): added to the std. Defaults to 1e-4.
        loss_weight (float, optional): factor on the loss; defaults to
            ``2 * tau`` as in the reference.
    """

    def __init__(self, tau: float = 0.2, std_eps: float = 1e-4, loss_weight=None):
        super().__init__()
        if tau <= 0:
            raise PeraConfigError(f'PatchInfoNCELoss: tau must be > 0, got {tau}')
        self.tau, self.std_eps = tau, std_eps
        self.loss_weight = 2 * tau if loss_weight is None else loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``pred`` (B, n, C) against ``target`` (B, n, C), paired by index."""
        dtype = torch.promote_types(pred.dtype, torch.float32)  # fp32 or fp64
        pred, target = pred.to(dtype), target.to(dtype)
        z = (pred - pred.mean(1, keepdim=True)) / (pred.std(1, keepdim=True) + self.std_eps)
        z = F.normalize(z, dim=-1)
        t = F.normalize(target, dim=-1)
        logits = z @ t.transpose(1, 2) / self.tau
        B, n = logits.shape[:2]
        labels = torch.arange(n, device=logits.device).repeat(B)
        return F.cross_entropy(logits.flatten(0, 1), labels) * self.loss_weight
