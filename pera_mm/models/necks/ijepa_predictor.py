# Copyright (c) pera-mm contributors. All rights reserved.
"""The I-JEPA predictor: a narrow ViT that predicts target-block features from the context."""

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...structures import gather_tokens
from ...utils.errors import PeraConfigError, PeraDataError
from ..utils import Block, sincos_pos_embed_2d, sincos_pos_embed_for_grid
from ..utils.pos_embed import SINCOS_GRID_MODES
from ..utils.weight_init import init_linear_and_norm_layers


@MODELS.register_module()
class IJEPAPredictor(BaseModule):
    """Predict the target encoder's features of each target block from the context tokens.

    The context tokens (encoder width) are projected to the predictor width and get
    the predictor's own fixed sin-cos positions at their indices. Every target block
    is a separate sequence ``[context, mask tokens]``: the shared learned mask token
    plus the position of each target patch. Sequences are stacked block-major (row
    ``j * B + b`` = block ``j`` of image ``b``), so the blocks of one image never
    attend to each other. After the blocks and the final norm, the mask-token
    outputs are projected back to the encoder width.

    Args:
        in_channels (int): encoder width (input and output of the predictor).
        embed_dims (int): predictor width (divisible by 4 for the sin-cos table).
        num_layers (int): predictor depth.
        num_heads (int): attention heads (the reference passes the encoder's).
        grid_size (tuple[int, int]): native patch grid of the positions.
        mlp_ratio (float): MLP hidden width / ``embed_dims``. Defaults to 4.
        qkv_bias (bool): bias of the qkv projections. Defaults to True.
        drop_path_rate (float): per-sample stochastic depth of every block.
        pos_embed_mode (str): 'recompute' or 'interpolate' (see ``IJEPAViT``).
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        num_layers: int,
        num_heads: int,
        grid_size: Sequence[int],
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        pos_embed_mode: str = 'recompute',
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        name = type(self).__name__
        if embed_dims % 4:
            raise PeraConfigError(
                f'{name}: embed_dims must be divisible by 4 (sin-cos positions), got {embed_dims}'
            )
        if pos_embed_mode not in SINCOS_GRID_MODES:
            raise PeraConfigError(
                f'{name}: pos_embed_mode must be one of {SINCOS_GRID_MODES}, got {pos_embed_mode!r}'
            )
        if not isinstance(num_layers, int) or num_layers < 1:
            raise PeraConfigError(f'{name}: num_layers must be a positive int, got {num_layers!r}')
        self.in_channels, self.embed_dims = in_channels, embed_dims
        self.grid_size = tuple(int(v) for v in grid_size)
        self.pos_embed_mode = pos_embed_mode
        self.embed = nn.Linear(in_channels, embed_dims)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.pos_embed = nn.Parameter(
            sincos_pos_embed_2d(self.grid_size, embed_dims), requires_grad=False
        )
        self.blocks = nn.ModuleList(
            [
                Block(
                    embed_dims,
                    num_heads,
                    int(embed_dims * mlp_ratio),
                    qkv_bias=qkv_bias,
                    drop_path=drop_path_rate,
                    drop_path_mode='row',
                )
                for _ in range(num_layers)
            ]
        )
        self.norm = nn.LayerNorm(embed_dims, eps=1e-6)
        self.proj = nn.Linear(embed_dims, in_channels)

    def init_weights(self):
        """Trunc-normal(0.02) Linear weights and mask token, zero biases, unit LayerNorms."""
        super().init_weights()
        if self.init_cfg is not None and self.init_cfg.get('type') == 'Pretrained':
            return
        init_linear_and_norm_layers(self, partial(nn.init.trunc_normal_, std=0.02))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed_2d(self.grid_size, self.embed_dims))

    def forward(self, context, context_idx, target_idx, grid_hw=None) -> torch.Tensor:
        """Predictions of every target block, block-major.

        Args:
            context (Tensor): (B, K, in_channels) context-encoder outputs.
            context_idx (Tensor): (B, K) patch indices of the context tokens.
            target_idx (Sequence[Tensor]): one (B, M) index tensor per target block.
            grid_hw (tuple[int, int], optional): patch grid; the native one by default.

        Returns:
            Tensor: (num_blocks * B, M, in_channels), row ``j * B + b`` = block ``j``
            of image ``b``.
        """
        B, K = context.shape[:2]
        if context_idx.shape != (B, K):
            raise PeraDataError(
                f'{type(self).__name__}: context_idx has shape {tuple(context_idx.shape)}, '
                f'expected {(B, K)} (one index per context token)'
            )
        pos = sincos_pos_embed_for_grid(
            self.pos_embed, self.grid_size, grid_hw or self.grid_size, self.pos_embed_mode
        )
        num_blocks = len(target_idx)
        x = self.embed(context)
        x = x + gather_tokens(pos.expand(B, -1, -1).to(x.dtype), context_idx)
        targets = torch.cat(list(target_idx), dim=0)  # (num_blocks * B, M), block-major
        queries = self.mask_token.to(x.dtype) + gather_tokens(
            pos.expand(targets.shape[0], -1, -1).to(x.dtype), targets
        )
        x = torch.cat([x.repeat(num_blocks, 1, 1), queries], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.proj(self.norm(x)[:, K:])
