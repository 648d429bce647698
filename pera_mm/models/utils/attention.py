# Copyright (c) pera-mm contributors. All rights reserved.
"""Multi-head self-attention on PyTorch's fused SDPA kernel."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...structures.patch_ops import gather_tokens
from ...utils.errors import PeraConfigError
from .onednn_linear import check_kernel, cpu_fp32_eager, linear, linear_module
from .rope import apply_rope

#: values of ``qkv_bias``: a bias on all of q, k, v; none; q and v only (k bias fixed at 0)
QKV_BIAS_CHOICES = (True, False, 'qv')
#: kernels of the attention itself: 'auto' (explicit softmax attention for short key
#: sequences in fp32 on CPU, SDPA otherwise) or always SDPA
ATTENTION_KERNELS = ('auto', 'sdpa')
#: longest key sequence 'auto' computes explicitly: CPU flash SDPA has a fixed cost per
#: (batch, head) block that dominates below it (docs/benchmarks.md, "Step speed vs 90204a9")
EXPLICIT_MAX_KEYS = 64


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: str = 'sdpa'):
    """``softmax(q k^T / sqrt(d)) v`` of (B, H, N, d) heads: SDPA, or explicit where 'auto' applies.

    The explicit form is two batched GEMMs and one softmax; for the backward it
    keeps the (B, H, K, N) probabilities, at most ``EXPLICIT_MAX_KEYS`` values
    per query and head.
    """
    if kernel == 'auto' and k.shape[-2] <= EXPLICIT_MAX_KEYS and cpu_fp32_eager(q):
        logits = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-2, -1))
        return torch.matmul(logits.softmax(-1), v)
    return F.scaled_dot_product_attention(q, k, v)


class Attention(nn.Module):
    """Multi-head self-attention on PyTorch's fused SDPA kernel.

    ``scaled_dot_product_attention`` picks flash / memory-efficient kernels on
    GPU and a fused math path on CPU; numerically it is plain softmax attention.
    With ``attention_kernel='auto'``, short key sequences in fp32 on CPU take the
    explicit form instead (:func:`attend`).
    Neither PerA recipe uses attention or projection dropout, so there is none.

    Args:
        dim (int): token width.
        num_heads (int): heads; must divide ``dim``.
        qkv_bias (bool | str): True (default): a bias of the fused qkv
            projection; False: none; ``'qv'``: learnable q and v biases
            (``q_bias``, ``v_bias``) and a k bias fixed at zero (DINOv3's masked
            k bias, BEiT / EVA / timm's ``*_qkvb`` models). A k bias shifts
            every logit of a query by the same amount, so softmax ignores it.
        linear_kernel (str): kernel of the qkv and output projections,
            ``'aten'`` (default), ``'auto'`` or ``'auto_forward'`` (oneDNN for
            fp32 on CPU, see :mod:`~pera_mm.models.utils.onednn_linear`).
        attention_kernel (str): one of :data:`ATTENTION_KERNELS`; 'sdpa'
            (default) or 'auto'. Equal to rounding.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias=True,
        linear_kernel: str = 'aten',
        attention_kernel: str = 'sdpa',
    ):
        super().__init__()
        if dim % num_heads:
            raise PeraConfigError(
                f'embed_dims ({dim}) must be divisible by num_heads ({num_heads})'
            )
        if not (isinstance(qkv_bias, bool) or qkv_bias == 'qv'):
            raise PeraConfigError(f'qkv_bias must be one of {QKV_BIAS_CHOICES}, got {qkv_bias!r}')
        if attention_kernel not in ATTENTION_KERNELS:
            raise PeraConfigError(
                f'attention_kernel must be one of {ATTENTION_KERNELS}, got {attention_kernel!r}'
            )
        self.num_heads = num_heads
        self.linear_kernel = check_kernel(linear_kernel)
        self.attention_kernel = attention_kernel
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
        ``nn.Linear`` keeps one linear with the bias (:func:`linear`).
        """
        if self.q_bias is None:
            return linear_module(self.qkv, x, self.linear_kernel)
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        if type(self.qkv) is nn.Linear:
            return linear(x, self.qkv.weight, bias, self.linear_kernel)
        return self.qkv(x) + bias

    def query_key_value(self, x: torch.Tensor, queries=None):
        """Q (B, K, C) at the tokens ``queries`` (B, K) (all N tokens when None), k and v (B, N, C).

        With ``queries`` and a plain ``nn.Linear`` the q rows of the fused weight
        multiply the query tokens only, so the unread tokens cost no q GEMM.
        """
        if queries is None:
            return self.qkv_projection(x).split(x.shape[-1], dim=-1)
        return self._split_qkv(x, lambda t: gather_tokens(t, queries))

    def _split_qkv(self, x: torch.Tensor, take_queries):
        """Q of the query tokens ``take_queries(x)``, k and v of every token of ``x``."""
        C = x.shape[-1]
        if type(self.qkv) is not nn.Linear:  # e.g. LoRA: one call of the wrapped module
            q, k, v = self.qkv_projection(x).split(C, dim=-1)
            return take_queries(q), k, v
        weight, bias = self.qkv.weight, self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        kernel = self.linear_kernel
        q = linear(take_queries(x), weight[:C], None if bias is None else bias[:C], kernel)
        k, v = linear(x, weight[C:], None if bias is None else bias[C:], kernel).split(C, dim=-1)
        return q, k, v

    def forward(self, x: torch.Tensor, rope=None, queries=None) -> torch.Tensor:
        """Attend over the tokens of ``x`` (B, N, C).

        ``rope``: optional ``(sin, cos)``, each (B or 1, N, head_dim), rotating
        q and k token by token (sin 0 / cos 1 on tokens without a position).
        ``queries``: optional (B, K) token indices; only they attend (to all N
        tokens) and the output is (B, K, C) in their order.
        """
        q, k, v = self.query_key_value(x, queries)
        out = self._heads_attend(q, k, v, rope, queries)
        return linear_module(self.proj, out, self.linear_kernel)

    def forward_groups(self, x: torch.Tensor, sizes, ropes, queries) -> torch.Tensor:
        """Attention within each of several sequences packed into ``x`` (T, C).

        ``sizes``: the (B_i, N_i) of the sequences, in order (T = sum B_i N_i);
        ``ropes`` / ``queries``: one entry per sequence, as for :meth:`forward`
        (``queries`` all None or all given). The qkv and output projections run
        once on every token; returns the packed (sum B_i K_i, C) outputs.
        """
        C = x.shape[-1]
        splits = [b * n for b, n in sizes]
        if queries[0] is None:
            q, k, v = self.qkv_projection(x).split(C, dim=-1)
            q_splits = splits
        else:

            def take_queries(t):
                parts = t.split(splits)
                rows = [
                    gather_tokens(p.view(b, n, -1), i)
                    for p, (b, n), i in zip(parts, sizes, queries)
                ]
                return torch.cat([r.flatten(0, 1) for r in rows])

            q, k, v = self._split_qkv(x, take_queries)
            q_splits = [idx.numel() for idx in queries]
        outs = [
            self._heads_attend(
                qi.view(b, -1, C), ki.view(b, n, C), vi.view(b, n, C), rope, idx
            ).flatten(0, 1)
            for qi, ki, vi, (b, n), rope, idx in zip(
                q.split(q_splits), k.split(splits), v.split(splits), sizes, ropes, queries
            )
        ]
        return linear_module(self.proj, torch.cat(outs), self.linear_kernel)

    def _heads_attend(self, q, k, v, rope, queries):
        """Softmax attention of q (B, K, C) over k, v (B, N, C), head by head: (B, K, C)."""
        B, _, C = q.shape
        H = self.num_heads
        q, k, v = (t.reshape(B, -1, H, C // H).transpose(1, 2) for t in (q, k, v))
        if rope is not None:
            k = apply_rope(k, *(t.unsqueeze(1) for t in rope))
            q_rope = rope if queries is None else [select_rows(t, queries) for t in rope]
            q = apply_rope(q, *(t.unsqueeze(1) for t in q_rope))
        x = attend(q, k, v, self.attention_kernel)
        return x.transpose(1, 2).reshape(B, -1, C)


def select_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The tokens ``idx`` (B, K) of a per-token table (B or 1, N, D): (B, K, D)."""
    return gather_tokens(table.expand(idx.shape[0], -1, -1), idx)
