import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import is_distributed
from mmpretrain.registry import MODELS

from .chunked_prototype_ce import ChunkedPrototypeCrossEntropy, chunked_target_stats


@MODELS.register_module()
class DINOClsLoss(nn.Module):
    """DINO cross-entropy between centred, sharpened teacher targets and the student.

    The teacher targets are ``softmax((t - center) / teacher_temp)`` in fp32; the
    student side is ``log_softmax(s / student_temp)``. ``pairing='same'`` (PerA)
    pairs student crop k with teacher crop k only; ``'cross'`` (DINO/DINOv2)
    pairs every student crop with every teacher crop of another index.

    ``chunk_size`` switches the algorithm to :meth:`forward_chunked`: the loss is
    computed straight from the heads' bottleneck features and prototype weights,
    K/``chunk_size`` prototypes at a time, never holding (rows, K) logits
    (131k prototypes). Same-crop pairing only.

    The centre is a persistent buffer (it survives checkpoints). Each call of
    :meth:`teacher_targets` accumulates the batch sum of the teacher logits;
    :meth:`update_center` (called by ``CenterUpdateHook`` after the optimizer
    step) all-reduces it across ranks and applies the EMA.
    """

    def __init__(self, out_channels, student_temp=0.1, teacher_temp=0.04,
                 center_momentum=0.9, pairing='same', loss_weight=1.0, chunk_size=None):
        super().__init__()
        if pairing not in ('same', 'cross'):
            raise ValueError(f"DINOClsLoss: pairing must be 'same' or 'cross', got {pairing!r}")
        if chunk_size is not None and (pairing != 'same' or chunk_size < 1):
            raise ValueError(f'DINOClsLoss: chunk_size must be a positive int and needs '
                             f"pairing='same', got chunk_size={chunk_size}, pairing={pairing!r}")
        self.chunk_size = chunk_size
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.center_momentum, self.pairing, self.loss_weight = center_momentum, pairing, loss_weight
        self.register_buffer('center', torch.zeros(1, out_channels))
        self._pending_sum, self._pending_count = None, 0

    def _remember(self, batch_sum, count):
        if self._pending_sum is None:
            self._pending_sum, self._pending_count = batch_sum, count
        else:
            self._pending_sum = self._pending_sum + batch_sum
            self._pending_count += count

    @torch.no_grad()
    def teacher_targets(self, teacher_logits, teacher_temp=None):
        """Centred, sharpened teacher distribution (fp32); remembers the batch sum."""
        t = teacher_logits.float()
        flat = t.reshape(-1, t.shape[-1])
        self._remember(flat.sum(0, keepdim=True), flat.shape[0])
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        return F.softmax((t - self.center) / temp, dim=-1)

    def forward_chunked(self, s_z, s_w, t_z, t_w):
        """Per-row cross-entropy (M,) times ``loss_weight`` from bottleneck features
        ``s_z``/``t_z`` (M, D) and effective prototype weights ``s_w``/``t_w`` (K, D).

        Also remembers the teacher batch sum for the centre: the prototype layer is
        linear, so ``Σ_m t_m = (Σ_m t_z_m) @ t_w.T`` exactly.
        """
        t_z, t_w = t_z.detach().float(), t_w.detach().float()
        with torch.no_grad():
            self._remember(t_z.sum(0, keepdim=True) @ t_w.t(), t_z.shape[0])
        rows = ChunkedPrototypeCrossEntropy.apply(
            s_z.float(), s_w.float(), t_z, t_w, self.center, self.student_temp,
            self.teacher_temp, self.chunk_size)
        return self.loss_weight * rows

    def chunked_target_entropies(self, t_z, t_w):
        """Monitor statistics of the teacher targets in the chunked path."""
        return chunked_target_stats(t_z.float(), t_w.float(), self.center, self.teacher_temp,
                                    self.chunk_size)

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

    def forward(self, student_logits, targets):
        """Mean cross-entropy over crop pairs and samples, times ``loss_weight``.

        Args:
            student_logits (Tensor): (Cs, B, K).
            targets (Tensor): (Ct, B, K) teacher probabilities.
        """
        logp = F.log_softmax(student_logits.float() / self.student_temp, dim=-1)
        if self.pairing == 'same':
            if logp.shape != targets.shape:
                raise ValueError(f'DINOClsLoss: same-crop pairing needs equal shapes, got '
                                 f'{tuple(logp.shape)} and {tuple(targets.shape)}')
            loss = -(targets * logp).sum(-1).mean()
        else:
            pair = -torch.einsum('tbk,sbk->stb', targets, logp).mean(-1)  # (Cs, Ct)
            valid = torch.ones_like(pair, dtype=torch.bool)
            n = min(pair.shape)
            valid[torch.arange(n), torch.arange(n)] = False
            loss = pair[valid].mean()
        return self.loss_weight * loss
