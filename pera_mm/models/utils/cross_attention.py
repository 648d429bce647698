# Copyright (c) pera-mm contributors. All rights reserved.
"""Multi-head cross-attention on PyTorch's fused SDPA kernel."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...utils.errors import PeraConfigError


class CrossAttention(nn.Module):
    """Queries from one sequence attend over the tokens of another.

    The key and value projections are fused into ``kv_proj`` (rows ``[k | v]``,
    heads contiguous inside each), as in the LatentMIM cross decoder. No
    dropout.

    Args:
        dim (int): width of the queries and of the output.
        num_heads (int): heads; must divide ``dim``.
        kv_dim (int, optional): width of the memory tokens. Defaults to ``dim``.
        qkv_bias (bool): biases of the q and kv projections. Defaults to True.
    """

    def __init__(self, dim: int, num_heads: int, kv_dim=None, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise PeraConfigError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv_proj = nn.Linear(kv_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Attend from ``x`` (B, N, C) over ``memory`` (B, M, C_kv)."""
        B, N, C = x.shape
        h, d = self.num_heads, C // self.num_heads
        q = self.q_proj(x).reshape(B, N, h, d).transpose(1, 2)
        k, v = self.kv_proj(memory).reshape(B, -1, 2, h, d).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))
