# Copyright (c) pera-mm contributors. All rights reserved.
"""Self-attention weights of a ``PerAViT`` block, recomputed from its qkv projection.

The blocks attend with fused SDPA, which returns no weights. The input of the named
block's attention is captured with a forward pre-hook (the forward stops there) and
``softmax(q kᵀ / √d)`` is recomputed from the block's own ``qkv`` weights, so the
model is used as it is, without any change to its code.
"""

import torch

from ..models.utils.rope import apply_rope
from ..utils.errors import PeraConfigError


class _StopForward(Exception):
    """Raised by the capture hook once the block input is known."""


def resolve_block(vit, block: int) -> int:
    """``block`` (negative counts from the end) as an index into ``vit.blocks``."""
    n = len(vit.blocks)
    if isinstance(block, bool) or not isinstance(block, int) or not -n <= block < n:
        raise PeraConfigError(
            f'--block {block!r}: the backbone has {n} blocks; expected an index in [{-n}, {n - 1}]'
        )
    return block % n


def attention_weights(attn, x: torch.Tensor, rope=None) -> torch.Tensor:
    """``softmax(q kᵀ / √d)`` per head of an ``Attention`` module on its input ``x`` (B, N, C).

    Uses the module's own q, k projection (separate q/v biases included) and, for
    RoPE backbones, the ``(sin, cos)`` rotation the block received.

    Returns:
        Tensor: (B, heads, N, N); every row sums to 1.
    """
    B, N, C = x.shape
    heads = attn.num_heads
    qkv = attn.qkv_projection(x).reshape(B, N, 3, heads, C // heads)
    q, k = qkv.permute(2, 0, 3, 1, 4)[:2]
    if rope is not None:
        sin, cos = (t.unsqueeze(1) for t in rope)
        q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
    return torch.softmax(q @ k.transpose(-2, -1) * (C // heads) ** -0.5, dim=-1)


@torch.no_grad()
def block_attention(vit, imgs: torch.Tensor, block: int = -1) -> torch.Tensor:
    """Attention weights of block ``block`` on the full token sequence of ``imgs``.

    Args:
        vit (PerAViT): the encoder (eval mode).
        imgs (Tensor): normalised (B, C, H, W) inputs.
        block (int): block index; -1 is the last block.

    Returns:
        Tensor: (B, heads, 1 + L, 1 + L), token 0 is the cls token.
    """
    attn = vit.blocks[resolve_block(vit, block)].attn
    captured = {}

    def capture(module, args, kwargs):
        captured['x'] = args[0]
        captured['rope'] = kwargs.get('rope', args[1] if len(args) > 1 else None)
        raise _StopForward

    handle = attn.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        vit.forward_sparse(imgs, None)
    except _StopForward:
        pass
    finally:
        handle.remove()
    return attention_weights(attn, captured['x'], captured['rope'])


def cls_attention_maps(weights: torch.Tensor, grid_hw, num_prefix: int = 1) -> torch.Tensor:
    """cls -> patch rows of attention weights (B, heads, N, N) as (B, heads, h, w).

    ``num_prefix``: tokens before the patches (the cls token plus any registers).
    """
    B, heads = weights.shape[:2]
    return weights[:, :, 0, num_prefix:].reshape(B, heads, *grid_hw)
