# Copyright (c) pera-mm contributors. All rights reserved.
"""The pre-norm transformer block of ``PerAViT`` and its parts."""

import torch
import torch.nn as nn

from ...utils.errors import PeraConfigError
from .attention import Attention
from .swiglu import SwiGLUMlp

#: feed-forward networks of a block
MLP_TYPES = ('mlp', 'swiglu')


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
        qkv_bias (bool | str): True, False or 'qv' (see :class:`Attention`).
            Defaults to True.
        drop_path (float): stochastic-depth rate of both branches. Defaults to 0.
        drop_path_mode (str): 'subset' or 'row'. Defaults to 'subset'.
        layer_scale_init_value (float): > 0 enables LayerScale. Defaults to 0.
        norm_eps (float): eps of both LayerNorms. Defaults to 1e-6.
        mlp_type (str): 'mlp' (GELU) or 'swiglu' (:class:`SwiGLUMlp`, whose
            hidden width is ``mlp_dim``). Defaults to 'mlp'.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        qkv_bias=True,
        drop_path: float = 0.0,
        drop_path_mode: str = 'subset',
        layer_scale_init_value: float = 0.0,
        norm_eps: float = 1e-6,
        mlp_type: str = 'mlp',
    ):
        super().__init__()
        if drop_path_mode not in ('row', 'subset'):
            raise PeraConfigError(
                f"drop_path_mode must be 'row' or 'subset', got {drop_path_mode!r}"
            )
        if mlp_type not in MLP_TYPES:
            raise PeraConfigError(f'mlp_type must be one of {MLP_TYPES}, got {mlp_type!r}')
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim) if mlp_type == 'mlp' else SwiGLUMlp(dim, mlp_dim)
        if layer_scale_init_value > 0:
            self.ls1 = LayerScale(dim, layer_scale_init_value)
            self.ls2 = LayerScale(dim, layer_scale_init_value)
        else:
            self.ls1 = self.ls2 = nn.Identity()
        self.drop_path = drop_path
        self.drop_path_mode = drop_path_mode

    def _attn_branch(self, x, rope=None):
        return self.ls1(self.attn(self.norm1(x), rope=rope))

    def _mlp_branch(self, x):
        return self.ls2(self.mlp(self.norm2(x)))

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        """Attention and MLP residual branches with stochastic depth.

        ``rope``: optional per-token ``(sin, cos)`` of the attention (see
        :class:`Attention`).
        """
        p = self.drop_path if self.training else 0.0
        if p > 0 and self.drop_path_mode == 'subset' and x.shape[0] > 1:
            x = self._subset_residual(x, self._attn_branch, p, rope)
            return self._subset_residual(x, self._mlp_branch, p)
        x = x + drop_path_rows(self._attn_branch(x, rope), p, self.training)
        return x + drop_path_rows(self._mlp_branch(x), p, self.training)

    @staticmethod
    def _subset_residual(x, branch, p, rope=None):
        b = x.shape[0]
        n = max(int(b * (1 - p)), 1)
        rows = torch.randperm(b, device=x.device)[:n]
        if rope is None:
            residual = branch(x[rows])
        else:  # per-sample rotations follow their rows
            rope = tuple(t[rows] if t.shape[0] == b else t for t in rope)
            residual = branch(x[rows], rope)
        return torch.index_add(x, 0, rows, residual.to(x.dtype), alpha=b / n)
