# Copyright (c) pera-mm contributors. All rights reserved.
"""Multi-head self-attention on PyTorch's fused SDPA kernel."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...utils.errors import PeraConfigError


class Attention(nn.Module):
    """Multi-head self-attention on PyTorch's fused SDPA kernel.

    ``scaled_dot_product_attention`` picks flash / memory-efficient kernels on
    GPU and a fused math path on CPU; numerically it is plain softmax attention.
    Neither PerA recipe uses attention or projection dropout, so there is none.

    Args:
        dim (int): token width.
        num_heads (int): heads; must divide ``dim``.
        qkv_bias (bool): bias of the fused qkv projection. Defaults to True.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise PeraConfigError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens of ``x`` (B, N, C)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))
