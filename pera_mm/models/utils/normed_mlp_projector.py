# Copyright (c) pera-mm contributors. All rights reserved.
"""Bias-free MLP projector with a LayerNorm after every linear layer."""

import torch
import torch.nn as nn

from ...utils.errors import PeraConfigError


class NormedMLPProjector(nn.Module):
    """``(Linear -> LN -> GELU) x (depth - 1) -> Linear -> LN`` on every token.

    The projection head of LatentMIM's encoders: the linear layers have no
    bias, the last LayerNorm is the output norm. Layers are ``linear{i}`` and
    ``norm{i}``. The reference builds these norms with ``nn.LayerNorm``'s
    default eps 1e-5 (not the ViT's 1e-6).

    Args:
        in_dim (int): input width.
        hidden_dim (int): width of the hidden layers.
        out_dim (int): output width.
        depth (int): linear layers; >= 1. Defaults to 3.
        eps (float): LayerNorm eps. Defaults to 1e-5.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, depth: int = 3, eps=1e-5):
        super().__init__()
        if depth < 1:
            raise PeraConfigError(f'NormedMLPProjector: depth must be >= 1, got {depth}')
        self.depth = depth
        for i in range(depth):
            dim_in = in_dim if i == 0 else hidden_dim
            dim_out = out_dim if i == depth - 1 else hidden_dim
            self.add_module(f'linear{i}', nn.Linear(dim_in, dim_out, bias=False))
            self.add_module(f'norm{i}', nn.LayerNorm(dim_out, eps=eps))
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project the last dimension of ``x``."""
        for i in range(self.depth):
            x = getattr(self, f'norm{i}')(getattr(self, f'linear{i}')(x))
            if i < self.depth - 1:
                x = self.act(x)
        return x
