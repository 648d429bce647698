import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import is_distributed
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DINOClsLoss(nn.Module):
    """DINO cross-entropy between centred, sharpened teacher targets and the student.

    The teacher targets are ``softmax((t - center) / teacher_temp)`` in fp32; the
    student side is ``log_softmax(s / student_temp)``. ``pairing='same'`` (PerA)
    pairs student crop k with teacher crop k only; ``'cross'`` (DINO/DINOv2)
    pairs every student crop with every teacher crop of another index.

    The centre is a persistent buffer (it survives checkpoints). Each call of
    :meth:`teacher_targets` accumulates the batch sum of the teacher logits;
    :meth:`update_center` (called by ``CenterUpdateHook`` after the optimizer
    step) all-reduces it across ranks and applies the EMA.
    """

    def __init__(self, out_channels, student_temp=0.1, teacher_temp=0.04,
                 center_momentum=0.9, pairing='same', loss_weight=1.0):
        super().__init__()
        if pairing not in ('same', 'cross'):
            raise ValueError(f"DINOClsLoss: pairing must be 'same' or 'cross', got {pairing!r}")
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.center_momentum, self.pairing, self.loss_weight = center_momentum, pairing, loss_weight
        self.register_buffer('center', torch.zeros(1, out_channels))
        self._pending_sum, self._pending_count = None, 0

    @torch.no_grad()
    def teacher_targets(self, teacher_logits, teacher_temp=None):
        """Centred, sharpened teacher distribution (fp32); remembers the batch sum."""
        t = teacher_logits.float()
        flat = t.reshape(-1, t.shape[-1])
        batch_sum = flat.sum(0, keepdim=True)
        if self._pending_sum is None:
            self._pending_sum, self._pending_count = batch_sum, flat.shape[0]
        else:
            self._pending_sum = self._pending_sum + batch_sum
            self._pending_count += flat.shape[0]
        temp = self.teacher_temp if teacher_temp is None else teacher_temp
        return F.softmax((t - self.center) / temp, dim=-1)

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
