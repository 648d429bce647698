# Copyright (c) pera-mm contributors. All rights reserved.
"""The SwiGLU feed-forward network (DINOv3's ViT-S+/L+/H+, DINOv2's ViT-g)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class SwiGLUMlp(nn.Module):
    """``fc2(SiLU(fc1_g(x)) * fc1_x(x))``, the gated feed-forward network.

    ``hidden_dim`` is the width of the gated product itself (DINOv3 derives it
    as ``int(2 / 3 * ffn_ratio * dim)`` rounded up to a multiple of 8); the
    parameter names follow timm's ``SwiGLU`` (DINOv3's ``w1, w2, w3``).

    Args:
        dim (int): token width.
        hidden_dim (int): hidden width.
    """

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden_dim)
        self.fc1_x = nn.Linear(dim, hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc2(SiLU(fc1_g(x)) * fc1_x(x))."""
        return self.fc2(F.silu(self.fc1_g(x)) * self.fc1_x(x))
