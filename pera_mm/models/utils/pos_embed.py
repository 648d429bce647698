# Copyright (c) pera-mm contributors. All rights reserved.
"""Resizing of ViT position embeddings between patch grids."""

import math

import torch
import torch.nn.functional as F


def resize_pos_embed(pos_embed, src_hw, dst_hw, num_extra_tokens=1, offset=0.0, antialias=False):
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
        antialias (bool): antialiased bicubic resize to ``dst_hw`` (timm's
            ``resample_abs_pos_embed`` convention; matters when shrinking).
            Only with ``offset == 0``.
    """
    if tuple(src_hw) == tuple(dst_hw):
        return pos_embed
    extra, patch = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    C = patch.shape[-1]
    grid = patch.reshape(1, src_hw[0], src_hw[1], C).permute(0, 3, 1, 2)
    dtype = grid.dtype
    grid = grid.float()
    if offset > 0 and antialias:
        raise ValueError('pos-embed resize: offset and antialias are two conventions, pick one')
    if offset > 0:
        scale = ((dst_hw[0] + offset) / src_hw[0], (dst_hw[1] + offset) / src_hw[1])
        grid = F.interpolate(grid, scale_factor=scale, mode='bicubic', align_corners=False)
        if tuple(grid.shape[-2:]) != tuple(dst_hw):
            raise ValueError(
                f'pos-embed resize with offset {offset} gave {tuple(grid.shape[-2:])}, '
                f'expected {tuple(dst_hw)}'
            )
    else:
        grid = F.interpolate(
            grid, size=tuple(dst_hw), mode='bicubic', align_corners=False, antialias=antialias
        )
    patch = grid.to(dtype).permute(0, 2, 3, 1).reshape(1, -1, C)
    return torch.cat([extra, patch], dim=1)


def infer_square_grid(num_patches):
    """The (side, side) grid of ``num_patches`` position embeddings; errors if not square."""
    side = int(math.isqrt(num_patches))
    if side * side != num_patches:
        raise ValueError(f'cannot infer a square patch grid from {num_patches} position embeddings')
    return side, side


def sincos_pos_embed_2d(grid_hw, embed_dims: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table of a patch grid (MAE / I-JEPA layout).

    With ``q = embed_dims / 4`` and ``w_k = 10000 ** (-k / q)``, the token of row
    ``r`` and column ``c`` (raster index ``r * W + c``) gets
    ``[sin(c w), cos(c w), sin(r w), cos(r w)]``: the first half follows the
    column. MMPretrain's ``build_2d_sincos_position_embedding`` is the transposed
    table (its first half follows the row). Computed in float64, returned fp32.

    Args:
        grid_hw (tuple[int, int]): patch grid (H, W).
        embed_dims (int): table width; must be divisible by 4.

    Returns:
        Tensor: (1, H * W, embed_dims) float32.
    """
    if embed_dims % 4:
        raise ValueError(f'a 2-D sin-cos table needs embed_dims divisible by 4, got {embed_dims}')
    h, w = (int(v) for v in grid_hw)
    q = embed_dims // 4
    omega = 1.0 / 10000 ** (torch.arange(q, dtype=torch.float64) / q)
    rows = torch.arange(h, dtype=torch.float64).repeat_interleave(w)
    cols = torch.arange(w, dtype=torch.float64).repeat(h)
    col_phase, row_phase = torch.outer(cols, omega), torch.outer(rows, omega)
    table = torch.cat([col_phase.sin(), col_phase.cos(), row_phase.sin(), row_phase.cos()], dim=1)
    return table.float().unsqueeze(0)


#: how a fixed sin-cos table is obtained for a patch grid other than the native one
SINCOS_GRID_MODES = ('recompute', 'interpolate')


def sincos_pos_embed_for_grid(native, native_hw, grid_hw, mode: str = 'recompute'):
    """The fixed sin-cos position table (1, h * w, C) of a patch grid.

    The native grid uses ``native`` as it is. Another grid gets its own exact table
    (``mode='recompute'``) or the native table resized bicubically
    (``mode='interpolate'``, what the I-JEPA reference does).

    Args:
        native (Tensor): (1, Hn * Wn, C) table of the native grid.
        native_hw (tuple[int, int]): native grid (Hn, Wn).
        grid_hw (tuple[int, int]): wanted grid (h, w).
        mode (str): 'recompute' or 'interpolate'.
    """
    grid_hw = tuple(int(v) for v in grid_hw)
    if grid_hw == tuple(native_hw):
        return native
    if mode == 'interpolate':
        return resize_pos_embed(native, native_hw, grid_hw, num_extra_tokens=0)
    if mode != 'recompute':
        raise ValueError(f'mode must be one of {SINCOS_GRID_MODES}, got {mode!r}')
    return sincos_pos_embed_2d(grid_hw, native.shape[-1]).to(native.device, native.dtype)
