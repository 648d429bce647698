# Copyright (c) pera-mm contributors. All rights reserved.
"""The pre-norm transformer block of ``PerAViT`` and its parts."""

import torch
import torch.nn as nn

from ...utils.errors import PeraConfigError
from .attention import Attention


class Mlp(nn.Module):
    """Two-layer feed-forward network of a transformer block (GELU, no dropout).

    Args:
        dim (int): token width.
        hidden_dim (int): hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc2(GELU(fc1(x)))."""
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Learnable per-channel scale of a residual branch (CaiT / DINOv2).

    Args:
        dim (int): token width.
        init_value (float): initial scale of every channel.
    """

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the channels of ``x``."""
        return x * self.gamma


def drop_path_rows(x, drop_prob, training):
    """Classic stochastic depth: zero the branch for random samples, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block with two stochastic-depth forms.

    ``drop_path_mode='row'`` computes the branch for every sample and zeroes a
    random subset. ``'subset'`` (the form of the released PerA code) computes the
    branch only for a random ``int(B * (1 - p))`` rows and adds it back scaled by
    ``B / subset``, so dropped rows cost nothing.

    Args:
        dim (int): token width.
        num_heads (int): attention heads.
        mlp_dim (int): hidden width of the MLP.
        qkv_bias (bool): bias of the qkv projection. Defaults to True.
        drop_path (float): stochastic-depth rate of both branches. Defaults to 0.
        drop_path_mode (str): 'subset' or 'row'. Defaults to 'subset'.
        layer_scale_init_value (float): > 0 enables LayerScale. Defaults to 0.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        drop_path_mode: str = 'subset',
        layer_scale_init_value: float = 0.0,
    ):
        super().__init__()
        if drop_path_mode not in ('row', 'subset'):
            raise PeraConfigError(
                f"drop_path_mode must be 'row' or 'subset', got {drop_path_mode!r}"
            )
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention and MLP residual branches with stochastic depth."""
        p = self.drop_path if self.training else 0.0
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
