import torch.nn as nn
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class PixelMSELoss(nn.Module):
    """Squared error between predicted and target patch pixels.

    ``reduction='patch_sum'`` (released PerA code) sums the squared error over a
    patch's p*p*C values and averages over predicted patches; ``'mean'``
    averages over every value. ``norm_pix`` normalises each target patch by its
    own mean/std first (MAE-style).

    Args:
        loss_weight (float): factor on the loss. Defaults to 0.01.
        reduction (str): 'patch_sum' or 'mean'. Defaults to 'patch_sum'.
        norm_pix (bool): normalise each target patch. Defaults to False.
    """

    def __init__(self, loss_weight=0.01, reduction='patch_sum', norm_pix=False):
        super().__init__()
        if reduction not in ('patch_sum', 'mean'):
            raise PeraConfigError(
                f"PixelMSELoss: reduction must be 'patch_sum' or 'mean', got {reduction!r}"
            )
        self.loss_weight, self.reduction, self.norm_pix = loss_weight, reduction, norm_pix

    def forward(self, pred, target):
        target = target.float()
        if self.norm_pix:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        err = (pred.float() - target) ** 2
        loss = err.sum(-1).mean() if self.reduction == 'patch_sum' else err.mean()
        return self.loss_weight * loss
