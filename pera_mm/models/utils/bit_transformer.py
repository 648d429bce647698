# Copyright (c) pera-mm contributors. All rights reserved.
"""The token transformer of BIT (Chen et al., 2021): a joint encoder and a per-date decoder.

Written from the description of the reference (justchenhao/BIT_CD, commit adcd7ae) in
``../shared/design/parity-bit.md``; the arithmetic that matters for parity:

- attention logits are scaled by ``dim ** -0.5`` (the token width, 32 in BIT), **not** by
  ``head_dims ** -0.5``; q, k and v have no bias, the output projection has one;
- the per-head split is 'b n (h d)' (head index outer) on each of q, k, v;
- pre-norm residual blocks with no final norm; the FFN is Linear, exact GELU, Linear;
- in the decoder the pixels are the queries and the same LayerNorm normalises both the
  queries and the memory tokens (softmax over the tokens).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...utils.errors import PeraConfigError


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, heads * d) -> (B, heads, N, d), head index outer as in 'b n (h d)'."""
    B, N, inner = x.shape
    return x.reshape(B, N, num_heads, inner // num_heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, heads, N, d) -> (B, N, heads * d)."""
    B, heads, N, d = x.shape
    return x.transpose(1, 2).reshape(B, N, heads * d)


class _BITAttention(nn.Module):
    """What both BIT attentions share: checks, the ``dim ** -0.5`` scale, the output projection.

    A subclass builds its input projections in :meth:`_build_inputs` (called between
    the checks and the output projection, so parameters are created in the
    reference's order) and calls :meth:`_attend` on its split q, k, v.

    Args:
        dim (int): token width; also sets the logit scale ``dim ** -0.5``.
        num_heads (int): heads.
        head_dims (int): width of each head (inner width ``num_heads * head_dims``).
        dropout (float): dropout after the output projection.
    """

    def __init__(self, dim: int, num_heads: int, head_dims: int, dropout: float = 0.0):
        super().__init__()
        for name, value in (('dim', dim), ('num_heads', num_heads), ('head_dims', head_dims)):
            if not isinstance(value, int) or value <= 0:
                raise PeraConfigError(
                    f'BIT transformer: {name} must be a positive int, got {value!r}'
                )
        inner = num_heads * head_dims
        self.num_heads = num_heads
        self.scale = dim**-0.5
        self._build_inputs(dim, inner)
        self.proj = nn.Linear(inner, dim)
        self.proj_drop = nn.Dropout(dropout)

    def _build_inputs(self, dim: int, inner: int):
        raise NotImplementedError

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention of split heads, merged and projected to ``dim``."""
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj_drop(self.proj(_merge_heads(out)))


class BITSelfAttention(_BITAttention):
    """Multi-head self-attention of the BIT encoder (one bias-free ``qkv`` projection).

    Takes the arguments of :class:`_BITAttention`.
    """

    def _build_inputs(self, dim: int, inner: int):
        self.qkv = nn.Linear(dim, inner * 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the tokens of ``x`` (B, N, dim)."""
        q, k, v = (_split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self._attend(q, k, v)


class BITCrossAttention(_BITAttention):
    """Multi-head cross-attention of the BIT decoder: queries from ``x``, keys/values from ``m``.

    Takes the arguments of :class:`_BITAttention` (``head_dims`` is BIT's
    ``decoder_dim_head``).
    """

    def _build_inputs(self, dim: int, inner: int):
        self.q = nn.Linear(dim, inner, bias=False)
        self.k = nn.Linear(dim, inner, bias=False)
        self.v = nn.Linear(dim, inner, bias=False)

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Queries ``x`` (B, N, dim) attend over the memory ``m`` (B, M, dim)."""
        q = _split_heads(self.q(x), self.num_heads)
        k = _split_heads(self.k(m), self.num_heads)
        v = _split_heads(self.v(m), self.num_heads)
        return self._attend(q, k, v)


class BITFeedForward(nn.Module):
    """Linear -> exact (erf) GELU -> dropout -> Linear -> dropout.

    Args:
        dim (int): token width.
        hidden_dims (int): hidden width (``mlp_dim``, 2 * dim in BIT).
        dropout (float): dropout after the activation and after the second linear.
    """

    def __init__(self, dim: int, hidden_dims: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two-layer MLP to the last dimension."""
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class _BITPreNormLayer(nn.Module):
    """``norm1``, the subclass's ``attention_cls`` as ``attn``, ``norm2`` and the FFN ``ffn``.

    Args:
        dim (int): token width.
        num_heads (int): attention heads.
        head_dims (int): width of each head.
        mlp_dims (int): FFN hidden width.
        dropout (float): dropout of the projections and the FFN.
    """

    attention_cls = None

    def __init__(self, dim: int, num_heads: int, head_dims: int, mlp_dims: int, dropout=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = self.attention_cls(dim, num_heads, head_dims, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = BITFeedForward(dim, mlp_dims, dropout)


class BITEncoderLayer(_BITPreNormLayer):
    """Pre-norm encoder layer: ``x + Attn(LN1(x))``, then ``x + FFN(LN2(x))``.

    Takes the arguments of :class:`_BITPreNormLayer`.
    """

    attention_cls = BITSelfAttention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Update the tokens ``x`` (B, N, dim)."""
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class BITDecoderLayer(_BITPreNormLayer):
    """Pre-norm decoder layer: ``x + CrossAttn(LN1(x), LN1(m))``, then ``x + FFN(LN2(x))``.

    The one LayerNorm ``norm1`` normalises the queries and the memory, as in the reference.

    Takes the arguments of :class:`_BITPreNormLayer` (``head_dims`` is BIT's
    ``decoder_dim_head``).
    """

    attention_cls = BITCrossAttention

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Update the queries ``x`` (B, N, dim) from the memory ``m`` (B, M, dim)."""
        x = x + self.attn(self.norm1(x), self.norm1(m))
        return x + self.ffn(self.norm2(x))


class _BITLayerStack(nn.Module):
    """``depth`` layers of the subclass's ``layer_cls`` in ``layers``; no final norm.

    Args:
        dim (int): token width.
        depth (int): layers (the config's ``depth_field``).
        num_heads (int): attention heads.
        head_dims (int): width of each head.
        mlp_dims (int): FFN hidden width.
        dropout (float): dropout of the projections and the FFN.
    """

    layer_cls = None
    #: how a bad ``depth`` is named in the error, e.g. 'encoder: enc_depth'
    depth_field = ''

    def __init__(self, dim, depth, num_heads, head_dims, mlp_dims, dropout=0.0):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise PeraConfigError(f'BIT {self.depth_field} must be an int >= 1, got {depth!r}')
        self.layers = nn.ModuleList(
            self.layer_cls(dim, num_heads, head_dims, mlp_dims, dropout) for _ in range(depth)
        )


class BITTransformerEncoder(_BITLayerStack):
    """``depth`` encoder layers over the tokens of both dates, no final norm.

    Takes the arguments of :class:`_BITLayerStack` (``depth`` is ``enc_depth``).
    """

    layer_cls = BITEncoderLayer
    depth_field = 'encoder: enc_depth'

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode the tokens ``x`` (B, N, dim)."""
        for layer in self.layers:
            x = layer(x)
        return x


class BITTransformerDecoder(_BITLayerStack):
    """``depth`` decoder layers; the memory stays fixed through all of them, no final norm.

    Takes the arguments of :class:`_BITLayerStack` (``depth`` is ``dec_depth``,
    ``head_dims`` is ``decoder_dim_head``).
    """

    layer_cls = BITDecoderLayer
    depth_field = 'decoder: dec_depth'

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Decode the queries ``x`` (B, N, dim) against the memory ``m`` (B, M, dim)."""
        for layer in self.layers:
            x = layer(x, m)
        return x
