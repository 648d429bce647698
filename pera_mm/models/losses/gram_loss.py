# Copyright (c) pera-mm contributors. All rights reserved.
"""The gram (patch-affinity) loss of the cross-scale spatial-affinity component."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError

REDUCTIONS = ('image', 'batch')


def cosine_gram(x: torch.Tensor, clamp_negative: bool = False) -> torch.Tensor:
    """Cosine-similarity matrices ``Z Z^T`` of L2-normalised rows (fp32 at least).

    Args:
        x (Tensor): (B, N, D) features.
        clamp_negative (bool): set negative similarities to 0.

    Returns:
        Tensor: (B, N, N).
    """
    z = F.normalize(x.to(torch.promote_types(x.dtype, torch.float32)), dim=-1)
    gram = z @ z.transpose(1, 2)
    return gram.clamp_min(0) if clamp_negative else gram


@MODELS.register_module()
class GramLoss(nn.Module):
    """``mean((Z_S Z_S^T - Z_T Z_T^T)^2)`` on L2-normalised patch features.

    The student and the teacher describe the same N positions; the loss compares
    how the positions relate to each other (their cosine similarities), not the
    features themselves, so the two may live in different spaces.

    Args:
        reduction (str): 'image' (default: one N x N matrix per image, the mean over
            its entries, then over images) or 'batch' (one (B N) x (B N) matrix over
            every position of the batch, cross-image pairs included).
        clamp_negative (bool): clamp negative similarities to 0 in both matrices.
            Defaults to False.
        loss_weight (float): multiplier. Defaults to 1.0.
        detach_teacher (bool): stop the gradient at the teacher features. Defaults
            to True; ``SpatialAffinity`` turns it off, because its teacher tokens
            carry no gradient already and its learned ``linear`` downsampling on
            the teacher side must receive one.
    """

    def __init__(
        self,
        reduction: str = 'image',
        clamp_negative: bool = False,
        loss_weight: float = 1.0,
        detach_teacher: bool = True,
    ):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise PeraConfigError(
                f'GramLoss: reduction must be one of {REDUCTIONS}, got {reduction!r}'
            )
        self.reduction, self.clamp_negative = reduction, bool(clamp_negative)
        self.loss_weight = float(loss_weight)
        self.detach_teacher = bool(detach_teacher)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The loss of student (B, N, D) against teacher (B, N, D') features."""
        if student.dim() != 3 or teacher.dim() != 3 or student.shape[:2] != teacher.shape[:2]:
            raise PeraDataError(
                f'GramLoss: student and teacher must be (B, N, D) at the same B and N, got '
                f'{tuple(student.shape)} and {tuple(teacher.shape)}'
            )
        if self.detach_teacher:
            teacher = teacher.detach()
        if self.reduction == 'batch':
            student = student.reshape(1, -1, student.shape[-1])
            teacher = teacher.reshape(1, -1, teacher.shape[-1])
        diff = cosine_gram(student, self.clamp_negative) - cosine_gram(teacher, self.clamp_negative)
        return self.loss_weight * diff.square().mean()
