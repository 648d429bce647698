import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError


@MODELS.register_module()
class KoLeoLoss(nn.Module):
    """Kozachenko-Leonenko entropy regulariser: ``-mean log(d_nn + eps)``.

    ``d_nn`` is each sample's Euclidean distance to its nearest other sample in
    the batch after L2 normalisation. Always computed in fp32 (autocast off):
    nearest-neighbour distances of normalised features underflow in bf16.

    Args:
        loss_weight (float): factor on the loss. Defaults to 0.1.
        eps (float): added to the distances before the log. Defaults to 1e-8.
    """

    def __init__(self, loss_weight=0.1, eps=1e-8):
        super().__init__()
        self.loss_weight, self.eps = loss_weight, eps

    def forward(self, x):
        if x.shape[0] < 2:
            raise PeraConfigError(f'KoLeoLoss needs at least 2 samples per batch, got {x.shape[0]}')
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = F.normalize(x.float(), dim=-1, eps=self.eps)
            with torch.no_grad():
                sim = x @ x.t()
                sim.fill_diagonal_(-float('inf'))
                nearest = sim.argmax(dim=1)
            dist = (x - x[nearest]).norm(dim=-1)
            return -self.loss_weight * torch.log(dist + self.eps).mean()
