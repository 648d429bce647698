# Copyright (c) pera-mm contributors. All rights reserved.
"""The frozen 2-D sin-cos position table of LatentMIM (MoCo v3 layout)."""

import torch

from ...utils.errors import PeraConfigError


def grid_sincos_pos_embed(
    grid_hw, dim: int, cls_token: bool = True, temperature: float = 10000.0
) -> torch.Tensor:
    """A (``cls_token`` + H*W, dim) sin-cos table for an H x W patch grid.

    Row ``1 + r * W + c`` (``r * W + c`` without the cls row) belongs to the
    patch at row ``r``, column ``c``, whose coordinates are stretched over the
    grid as the LatentMIM reference does: ``y = r * H / (H - 1)``,
    ``x = c * W / (W - 1)`` (``linspace(0, 1, n) * n``). With frequencies
    ``w_k = temperature ** (-4k / dim)`` for ``k < dim / 4`` a row is
    ``[sin(x w), cos(x w), sin(y w), cos(y w)]``: the column part first (unlike
    ``pos_embed.sincos_pos_embed_2d`` of I-JEPA, whose coordinates are the
    integers ``0 .. n-1``). The
    cls row is all zeros. Computed in float32, as the reference does (its table
    is reproduced bit for bit).

    Args:
        grid_hw (tuple[int, int]): patch rows and columns.
        dim (int): table width; a multiple of 4.
        cls_token (bool): prepend the zero cls row. Defaults to True.
        temperature (float): frequency base. Defaults to 10000.

    Returns:
        Tensor: float32 table.
    """
    if dim % 4:
        raise PeraConfigError(f'sin-cos position table: dim must be a multiple of 4, got {dim}')
    h, w = grid_hw
    ys = torch.linspace(0, 1, h, dtype=torch.float32) * h
    xs = torch.linspace(0, 1, w, dtype=torch.float32) * w
    y, x = torch.meshgrid(ys, xs, indexing='ij')
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    ox = torch.outer(x.flatten(), omega)
    oy = torch.outer(y.flatten(), omega)
    table = torch.cat([ox.sin(), ox.cos(), oy.sin(), oy.cos()], dim=1)
    if cls_token:
        table = torch.cat([table.new_zeros(1, dim), table])
    return table
