import torch
import torch.nn as nn

from .onednn_linear import linear


class WeightNormLinear(nn.Module):
    """Bias-free linear layer with weight normalisation ``W = g * v / ||v||`` per row.

    Holds ``weight_v`` (out, in) and ``weight_g`` (out, 1) as plain parameters, the
    same names and shapes as ``torch.nn.utils.weight_norm`` uses, so checkpoints of
    DINO-style heads load without renaming. ``g`` starts at 1.

    Args:
        in_features (int): input width.
        out_features (int): output width (rows of the weight).
    """

    def __init__(self, in_features, out_features):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_g = nn.Parameter(torch.ones(out_features, 1))
        nn.init.trunc_normal_(self.weight_v, std=0.02)

    @property
    def weight(self):
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1, keepdim=True))

    def forward(self, x, kernel: str = 'aten'):
        """``x W^T``; ``kernel`` as in :func:`~pera_mm.models.utils.onednn_linear.linear`."""
        return linear(x, self.weight, None, kernel)

    def extra_repr(self):
        return f'in_features={self.in_features}, out_features={self.out_features}'
