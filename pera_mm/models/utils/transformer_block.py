import torch
import torch.nn as nn

from .attention import Attention


class Mlp(nn.Module):
    """Two-layer feed-forward network of a transformer block."""

    def __init__(self, dim, hidden_dim, drop=0.):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch (CaiT / DINOv2)."""

    def __init__(self, dim, init_value):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, ), float(init_value)))

    def forward(self, x):
        return x * self.gamma


def drop_path_rows(x, drop_prob, training):
    """Classic stochastic depth: zero the branch for random samples, rescale the rest."""
    if drop_prob == 0. or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0], ) + (1, ) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block with two stochastic-depth forms.

    ``drop_path_mode='row'`` computes the branch for every sample and zeroes a
    random subset. ``'subset'`` (the form of the released PerA code) computes the
    branch only for a random ``int(B * (1 - p))`` rows and adds it back scaled by
    ``B / subset``, so dropped rows cost nothing.
    """

    def __init__(self, dim, num_heads, mlp_dim, qkv_bias=True, drop_path=0.,
                 drop_path_mode='subset', layer_scale_init_value=0.):
        super().__init__()
        if drop_path_mode not in ('row', 'subset'):
            raise ValueError(f"drop_path_mode must be 'row' or 'subset', got {drop_path_mode!r}")
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)
        if layer_scale_init_value > 0:
            self.ls1 = LayerScale(dim, layer_scale_init_value)
            self.ls2 = LayerScale(dim, layer_scale_init_value)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = drop_path
        self.drop_path_mode = drop_path_mode

    def _attn_branch(self, x):
        return self.ls1(self.attn(self.norm1(x)))

    def _mlp_branch(self, x):
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x):
        p = self.drop_path if self.training else 0.
        if p > 0 and self.drop_path_mode == 'subset' and x.shape[0] > 1:
            x = self._subset_residual(x, self._attn_branch, p)
            return self._subset_residual(x, self._mlp_branch, p)
        x = x + drop_path_rows(self._attn_branch(x), p, self.training)
        return x + drop_path_rows(self._mlp_branch(x), p, self.training)

    @staticmethod
    def _subset_residual(x, branch, p):
        b = x.shape[0]
        n = max(int(b * (1 - p)), 1)
        rows = torch.randperm(b, device=x.device)[:n]
        residual = branch(x[rows]).to(x.dtype)
        return torch.index_add(x, 0, rows, residual, alpha=b / n)
