# Copyright (c) pera-mm contributors. All rights reserved.
"""Resizing of ViT position embeddings between patch grids."""

import math

import torch
import torch.nn.functional as F


def resize_pos_embed(pos_embed, src_hw, dst_hw, num_extra_tokens=1, offset=0.0):
    """Bicubically resize the patch part of a ViT position embedding.

    Args:
        pos_embed (Tensor): (1, num_extra_tokens + Hs*Ws, C).
        src_hw (tuple): source patch grid (Hs, Ws).
        dst_hw (tuple): target patch grid.
        num_extra_tokens (int): leading tokens (cls) that are kept as they are.
        offset (float): when > 0, interpolate with ``scale_factor=(dst + offset) / src``
            (the DINOv2 convention the released PerA code uses for local crops)
            instead of an explicit output size. Both give a ``dst_hw`` grid but
            sample the source at slightly different coordinates.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    extra, patch = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    C = patch.shape[-1]
    grid = patch.reshape(1, src_hw[0], src_hw[1], C).permute(0, 3, 1, 2)
    dtype = grid.dtype
    grid = grid.float()
    if offset > 0:
        scale = ((dst_hw[0] + offset) / src_hw[0], (dst_hw[1] + offset) / src_hw[1])
        grid = F.interpolate(grid, scale_factor=scale, mode='bicubic', align_corners=False)
        if tuple(grid.shape[-2:]) != tuple(dst_hw):
            raise ValueError(
                f'pos-embed resize with offset {offset} gave {tuple(grid.shape[-2:])}, '
                f'expected {tuple(dst_hw)}'
            )
    else:
        grid = F.interpolate(grid, size=dst_hw, mode='bicubic', align_corners=False)
    patch = grid.to(dtype).permute(0, 2, 3, 1).reshape(1, -1, C)
    return torch.cat([extra, patch], dim=1)


def infer_square_grid(num_patches):
    """The (side, side) grid of ``num_patches`` position embeddings; errors if not square."""
    side = int(math.isqrt(num_patches))
    if side * side != num_patches:
        raise ValueError(f'cannot infer a square patch grid from {num_patches} position embeddings')
    return side, side
