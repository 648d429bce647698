# Copyright (c) pera-mm contributors. All rights reserved.
"""Multi-head self-attention on PyTorch's fused SDPA kernel."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...utils.errors import PeraConfigError
from .rope import apply_rope

#: values of ``qkv_bias``: a bias on all of q, k, v; none; q and v only (k bias fixed at 0)
QKV_BIAS_CHOICES = (True, False, 'qv')


class Attention(nn.Module):
    """Multi-head self-attention on PyTorch's fused SDPA kernel.

    ``scaled_dot_product_attention`` picks flash / memory-efficient kernels on
    GPU and a fused math path on CPU; numerically it is plain softmax attention.
    Neither PerA recipe uses attention or projection dropout, so there is none.

    Args:
        dim (int): token width.
        num_heads (int): heads; must divide ``dim``.
        qkv_bias (bool | str): True (default): a bias of the fused qkv
            projection; False: none; ``'qv'``: learnable q and v biases
            (``q_bias``, ``v_bias``) and a k bias fixed at zero (DINOv3's masked
            k bias, BEiT / EVA / timm's ``*_qkvb`` models). A k bias shifts
            every logit of a query by the same amount, so softmax ignores it.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias=True):
        super().__init__()
        if dim % num_heads:
            raise PeraConfigError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        if not (isinstance(qkv_bias, bool) or qkv_bias == 'qv'):
            raise PeraConfigError(f'qkv_bias must be one of {QKV_BIAS_CHOICES}, got {qkv_bias!r}')
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias is True)
        if qkv_bias == 'qv':
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def qkv_projection(self, x: torch.Tensor) -> torch.Tensor:
        """The fused (B, N, 3C) q, k, v projection of ``x`` (with a zero k bias for 'qv').

        With ``'qv'`` the bias is added to the output of the ``qkv`` module, so a
        wrapper in its place (e.g. ``LoRALinear``) is called as a module; a plain
        ``nn.Linear`` keeps the fused ``F.linear`` with the bias.
        """
        if self.q_bias is None:
            return self.qkv(x)
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        if type(self.qkv) is nn.Linear:
            return F.linear(x, self.qkv.weight, bias)
        return self.qkv(x) + bias

    def forward(self, x: torch.Tensor, rope=None) -> torch.Tensor:
        """Attend over the tokens of ``x`` (B, N, C).

        ``rope``: optional ``(sin, cos)``, each (B or 1, N, head_dim), rotating
        q and k token by token (sin 0 / cos 1 on tokens without a position).
        """
        B, N, C = x.shape
        qkv = self.qkv_projection(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if rope is not None:
            sin, cos = (t.unsqueeze(1) for t in rope)
            q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))
