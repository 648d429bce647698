# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM's cross-attention decoder with position-weighted mask tokens."""

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils.attention import Attention
from ..utils.cross_attention import CrossAttention
from ..utils.grid_sincos_pos_embed import grid_sincos_pos_embed
from ..utils.transformer_block import Mlp
from ..utils.weight_init import init_linear_and_norm_layers


class CrossDecoderBlock(nn.Module):
    """``q += SA(norm1 q)``; ``q += CA(norm2q q, norm2kv kv)``; ``q += MLP(norm3 q)``.

    The memory ``kv`` is only read: each block normalises it with its own
    ``norm2kv``.

    Args:
        dim (int): token width.
        num_heads (int): heads of both attentions.
        mlp_dim (int): MLP hidden width.
        qkv_bias (bool): biases of the q/k/v projections. Defaults to True.
    """

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, qkv_bias: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2q = nn.LayerNorm(dim, eps=1e-6)
        self.norm2kv = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = CrossAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """Update the queries ``q`` (B, N, C) from the memory ``kv`` (B, M, C)."""
        q = q + self.self_attn(self.norm1(q))
        q = q + self.cross_attn(self.norm2q(q), self.norm2kv(kv))
        return q + self.mlp(self.norm3(q))


@MODELS.register_module()
class LatentMIMDecoder(BaseModule):
    """Predict the encoder's latent features of masked patches from the visible ones.

    ``xd = embed(x_vis)`` (all visible tokens, the encoder's cls included). A
    mask token for masked patch j is ``mask_token + sum_i softmax_i(pe_j . pe_i
    / sqrt(C)) xd_i`` over the visible patches i (position-weighted; the values
    carry no position), or the plain ``mask_token`` when
    ``pos_weighted_mask_token`` is False. Queries ``[cls_token; mask tokens] +
    pe``; memory ``xd + pe`` at the visible positions (cls slot row 0 = 0).
    Blocks (:class:`CrossDecoderBlock`), ``norm``, ``head``; the cls output is
    dropped. The sin-cos table is recomputed per grid.

    Args:
        in_channels (int): encoder width.
        embed_dims (int): decoder width (a multiple of 4).
        num_layers (int): decoder blocks.
        num_heads (int): heads.
        mlp_ratio (float): MLP hidden width / width. Defaults to 4.
        out_channels (int, optional): prediction width; defaults to ``in_channels``.
        pos_weighted_mask_token (bool): position-weighted mask tokens. Defaults to True.
        init_cfg (dict, optional): MMEngine init config; without one the
            reference init (xavier-uniform Linear, zero biases, unit LayerNorms,
            cls token N(0, 0.02), mask token 0).
    """

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        num_layers: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        out_channels: Optional[int] = None,
        pos_weighted_mask_token: bool = True,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.embed_dims = embed_dims
        self.pos_weighted_mask_token = pos_weighted_mask_token
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.embed = nn.Linear(in_channels, embed_dims)
        self.blocks = nn.ModuleList(
            CrossDecoderBlock(embed_dims, num_heads, int(embed_dims * mlp_ratio))
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.head = nn.Linear(embed_dims, out_channels or in_channels)

    def init_weights(self):
        """The reference init, or the ``init_cfg``."""
        if self.init_cfg:
            return super().init_weights()
        init_linear_and_norm_layers(self, nn.init.xavier_uniform_)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.zeros_(self.mask_token)

    def forward(self, x_vis, vis_ids, mask_ids, grid_hw) -> torch.Tensor:
        """Predictions for the masked patches.

        Args:
            x_vis (Tensor): (B, 1 + nv, C_in) encoder output, cls first.
            vis_ids (Tensor): (B, nv) raster ids of the visible patches.
            mask_ids (Tensor): (B, nm) raster ids of the patches to predict.
            grid_hw (tuple[int, int]): the patch grid.

        Returns:
            Tensor: (B, nm, out_channels), in the order of ``mask_ids``.
        """
        xd = self.embed(x_vis)
        B = xd.shape[0]
        table = grid_sincos_pos_embed(grid_hw, self.embed_dims).to(xd.device, xd.dtype)
        cls_pos = table[:1].expand(B, 1, -1)
        pe_vis, pe_mask = table[1:][vis_ids], table[1:][mask_ids]
        mask_tokens = self.mask_token.to(xd.dtype).expand(B, mask_ids.shape[1], -1)
        if self.pos_weighted_mask_token:
            avg = F.scaled_dot_product_attention(
                pe_mask[:, None], pe_vis[:, None], xd[:, None, 1:]
            )[:, 0]
            mask_tokens = mask_tokens + avg
        q = torch.cat([self.cls_token.to(xd.dtype).expand(B, -1, -1), mask_tokens], dim=1)
        q = q + torch.cat([cls_pos, pe_mask], dim=1)
        kv = xd + torch.cat([cls_pos, pe_vis], dim=1)
        for block in self.blocks:
            q = block(q, kv)
        return self.head(self.norm(q))[:, 1:]
