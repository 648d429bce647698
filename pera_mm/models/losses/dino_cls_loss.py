# Copyright (c) pera-mm contributors. All rights reserved.
"""DINO cross-entropy between centred, sharpened teacher targets and the student."""

from typing import Callable, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import is_distributed
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError
from .chunked_prototype_ce import ChunkedPrototypeCrossEntropy, chunked_target_stats


@torch.no_grad()
def target_entropies(targets: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean per-row entropy of teacher targets (..., K) and the entropy of their mean."""
    q = targets.reshape(-1, targets.shape[-1])
    entropy = -(q * torch.log(q.clamp_min(1e-12))).sum(-1).mean()
    mean_q = q.mean(0)
    return entropy, -(mean_q * torch.log(mean_q.clamp_min(1e-12))).sum()


@MODELS.register_module()
class DINOClsLoss(nn.Module):
    """DINO cross-entropy between centred, sharpened teacher targets and the student.

    Teacher targets are ``softmax((t - center) / teacher_temp)`` in fp32; the
    student side is ``log_softmax(s / student_temp)``. :meth:`forward` pairs
    student crop k with teacher crop k (PerA); :meth:`forward_cross` pairs every
    student crop with every teacher crop of another index (DINO / DINOv2).

    :meth:`forward_heads` runs the heads and the same-crop loss in one call and
    chooses how: with ``chunk_size`` the loss is computed straight from the
    heads' bottleneck features and prototype weights, ``chunk_size`` prototypes
    at a time, never holding (rows, K) logits (131k prototypes); without it,
    through the logits.

    The centre is a persistent buffer (it survives checkpoints). Every teacher
    batch seen by :meth:`teacher_targets` or the chunked path is summed;
    :meth:`update_center` (called by ``CenterUpdateHook`` after the optimizer
    step) all-reduces the sum across ranks and applies the EMA, and
    :meth:`discard_pending` drops it for a skipped step.

    Args:
        out_channels (int): prototypes K. PerA fills it in from its projector
            when the config leaves it out.
        student_temp (float): student softmax temperature. Defaults to 0.1.
        teacher_temp (float): teacher softmax temperature; scheduled by
            ``TeacherTemperatureHook`` in every shipped config. Defaults to 0.04.
        center_momentum (float): EMA momentum of the centre. Defaults to 0.9.
        loss_weight (float): factor on the loss. Defaults to 1.0.
        chunk_size (int, optional): prototypes per chunk of the chunked path;
            None computes through the logits. Defaults to None.
    """

    def __init__(
        self,
        out_channels: int,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        center_momentum: float = 0.9,
        loss_weight: float = 1.0,
        chunk_size: Optional[int] = None,
    ):
        super().__init__()
        if chunk_size is not None and chunk_size < 1:
            raise PeraConfigError(
                f'DINOClsLoss: chunk_size must be a positive int or None, got {chunk_size}'
            )
        self.chunk_size = chunk_size
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.center_momentum, self.loss_weight = center_momentum, loss_weight
        self.register_buffer('center', torch.zeros(1, out_channels))
        self._pending_sum, self._pending_count = None, 0

    # ---------------------------------------------------------------- centre
    def _remember(self, batch_sum, count):
        if self._pending_sum is None:
            self._pending_sum, self._pending_count = batch_sum, count
        else:
            self._pending_sum = self._pending_sum + batch_sum
            self._pending_count += count

    def discard_pending(self):
        """Forget the teacher sums of a step that was skipped (non-finite loss)."""
        self._pending_sum, self._pending_count = None, 0

    @torch.no_grad()
    def update_center(self):
        """EMA of the (all-reduced) mean teacher logits seen since the last update."""
        if self._pending_sum is None:
            return
        total = self._pending_sum
        count = torch.tensor([float(self._pending_count)], device=total.device)
        if is_distributed():
            dist.all_reduce(total)
            dist.all_reduce(count)
        mean = total / count
        self.center.mul_(self.center_momentum).add_(mean, alpha=1 - self.center_momentum)
        self._pending_sum, self._pending_count = None, 0

    # --------------------------------------------------------------- targets
    @torch.no_grad()
    def teacher_targets(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Centred, sharpened teacher distribution (fp32); remembers the batch sum."""
        t = teacher_logits.float()
        flat = t.reshape(-1, t.shape[-1])
        self._remember(flat.sum(0, keepdim=True), flat.shape[0])
        return F.softmax((t - self.center) / self.teacher_temp, dim=-1)

    # ----------------------------------------------------------------- losses
    def per_row(self, student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each row (..., K) -> (...), times ``loss_weight``."""
        logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        return self.loss_weight * -(targets * logp).sum(-1)

    def forward(self, student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Same-crop loss: mean cross-entropy of student crop k vs teacher crop k.

        Args:
            student_logits (Tensor): (C, B, K).
            targets (Tensor): (C, B, K) teacher probabilities.
        """
        if student_logits.shape != targets.shape:
            raise ValueError(
                f'DINOClsLoss: same-crop pairing needs equal shapes, got '
                f'{tuple(student_logits.shape)} and {tuple(targets.shape)}'
            )
        logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        return self.loss_weight * -(targets * logp).sum(-1).mean()

    def forward_cross(self, student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-crop loss: every student crop vs every teacher crop of another index.

        Args:
            student_logits (Tensor): (Cs, B, K).
            targets (Tensor): (Ct, B, K) teacher probabilities.
        """
        logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        pair = -torch.einsum('tbk,sbk->stb', targets, logp).mean(-1)  # (Cs, Ct)
        valid = torch.ones_like(pair, dtype=torch.bool)
        n = min(pair.shape)
        valid[torch.arange(n), torch.arange(n)] = False
        return self.loss_weight * pair[valid].mean()

    def forward_heads(
        self,
        student_head: Callable,
        teacher_head: Callable,
        student_feats: torch.Tensor,
        teacher_feats: torch.Tensor,
        student_logit_rows: int = 0,
        stats_rows: int = 0,
    ):
        """Same-crop loss per row, straight from the features that enter the heads.

        The heads are called here, with ``then=`` in the chunked path, so that the
        prototype matrices are used inside the heads' forwards, where FSDP has
        gathered them. The teacher's matrix is copied because the backward
        recomputes the targets after FSDP has resharded the teacher head.

        Args:
            student_head (callable): the student ``PerADINOHead``.
            teacher_head (callable): the teacher ``PerADINOHead``.
            student_feats (Tensor): (M, C) student features, row m paired with
                teacher row m.
            teacher_feats (Tensor): (M, C) teacher features.
            student_logit_rows (int): also return the student logits of the
                first this-many rows (KoLeo on head outputs). Defaults to 0.
            stats_rows (int): also return the target entropies of the first
                this-many rows (collapse monitor). Defaults to 0.

        Returns:
            tuple: per-row loss (M,) times ``loss_weight``; student logits
            (student_logit_rows, K) or None; ``(entropy, batch_entropy)`` or ().
        """
        if student_feats.shape[0] != teacher_feats.shape[0]:
            raise ValueError(
                f'DINOClsLoss: same-crop pairing needs as many teacher rows as '
                f'student rows, got {teacher_feats.shape[0]} and '
                f'{student_feats.shape[0]}'
            )
        if self.chunk_size:
            with torch.no_grad():
                t_z, t_w = teacher_head(
                    teacher_feats, then=lambda z, w: (z, w.detach().float().clone())
                )

            def student_terms(s_z, s_w):
                rows = self.forward_chunked(s_z, s_w, t_z, t_w)
                logits = s_z[:student_logit_rows] @ s_w.t() if student_logit_rows else None
                return rows, logits

            rows, s_logits = student_head(student_feats, then=student_terms)
            stats = self.chunked_target_entropies(t_z[:stats_rows], t_w) if stats_rows else ()
            return rows, s_logits, stats

        with torch.no_grad():
            targets = self.teacher_targets(teacher_head(teacher_feats))
        s_logits = student_head(student_feats)
        stats = target_entropies(targets[:stats_rows]) if stats_rows else ()
        return (
            self.per_row(s_logits, targets),
            s_logits[:student_logit_rows] if student_logit_rows else None,
            stats,
        )

    def forward_chunked(self, s_z, s_w, t_z, t_w):
        """Per-row cross-entropy (M,) times ``loss_weight`` from bottleneck features.

        ``s_z``/``t_z`` (M, D) are the bottleneck features and ``s_w``/``t_w``
        (K, D) the effective prototype weights. Also remembers the teacher batch
        sum for the centre: the prototype layer is linear, so
        ``Σ_m t_m = (Σ_m t_z_m) @ t_w.T`` exactly.
        """
        t_z, t_w = t_z.detach().float(), t_w.detach().float()
        with torch.no_grad():
            self._remember(t_z.sum(0, keepdim=True) @ t_w.t(), t_z.shape[0])
        rows = ChunkedPrototypeCrossEntropy.apply(
            s_z.float(),
            s_w.float(),
            t_z,
            t_w,
            self.center,
            self.student_temp,
            self.teacher_temp,
            self.chunk_size,
        )
        return self.loss_weight * rows

    def chunked_target_entropies(self, t_z, t_w):
        """Monitor statistics of the teacher targets in the chunked path."""
        return chunked_target_stats(
            t_z.float(), t_w.float(), self.center, self.teacher_temp, self.chunk_size
        )
