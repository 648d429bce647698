# Copyright (c) pera-mm contributors. All rights reserved.
"""Token and patch helpers shared by models, heads, losses and tools."""

import torch

from ..utils.errors import PeraConfigError


def gather_tokens(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Pick tokens ``x[n, idx[n, k]]``: (N, L, C) x (N, K) -> (N, K, C)."""
    return torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, h*w, p*p*C), channel-last inside each patch, raster order."""
    N, C, H, W = imgs.shape
    p = patch_size
    if H % p or W % p:
        raise PeraConfigError(f'patchify: image size {(H, W)} is not divisible by patch_size {p}')
    x = imgs.reshape(N, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(N, (H // p) * (W // p), p * p * C)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_hw, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: (N, h*w, p*p*C) -> (N, C, h*p, w*p)."""
    N = patches.shape[0]
    h, w = grid_hw
    p = patch_size
    x = patches.reshape(N, h, w, p, p, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(N, channels, h * p, w * p)
