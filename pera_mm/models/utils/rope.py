# Copyright (c) pera-mm contributors. All rights reserved.
"""DINOv3's 2-D rotary position embedding (RoPE) on per-token patch coordinates."""

import math
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ...utils.errors import PeraConfigError

#: how DINOv3 normalises the patch coordinates of a grid
ROPE_NORMALIZE_COORDS = ('separate', 'min', 'max')


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """[x1, x2] -> [-x2, x1] on the last dimension (the rotate-half RoPE layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: torch.Tensor, sin: torch.Tensor, cos: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., T, D) by the angles whose sin / cos (..., T, D) are given."""
    return (x * cos + rotate_half(x) * sin).to(x.dtype)


class RotaryPositionEmbedding2D(nn.Module):
    """DINOv3's rotary position embedding of a patch grid.

    A patch at row ``i`` and column ``j`` of an ``H x W`` grid has the
    coordinates ``(2 (i + 0.5) / H - 1, 2 (j + 0.5) / W - 1)`` (``'separate'``
    normalisation; ``'min'`` / ``'max'`` divide both axes by the shorter / longer
    side). With ``D`` the head width and periods ``base ** (2 k / (D / 2))``,
    ``k < D / 4``, the angles ``2 pi coord / period`` of both axes make ``D / 2``
    frequencies, laid out rotate-half (``[a, a]``). Coordinates are produced per
    token, so a sparse path gathers the coordinates of the tokens it keeps and
    every token is rotated by its own grid position. The cls and register tokens
    get no rotation.

    Train-time coordinate augmentation (DINOv3's, in its order; one draw per
    forward call shared by every token and block of that call):
    ``shift_coords`` adds a per-axis uniform shift in ``[-s, s]``,
    ``jitter_coords`` scales each axis by a log-uniform factor in ``[1/J, J]``,
    ``rescale_coords`` scales both axes by one log-uniform factor in ``[1/R, R]``.

    Args:
        head_dim (int): width of one attention head; must be divisible by 4.
        base (float): period base (DINOv3: 100).
        normalize_coords (str): 'separate', 'min' or 'max'.
        shift_coords (float, optional): see above.
        jitter_coords (float, optional): see above (>= 1).
        rescale_coords (float, optional): see above (>= 1; DINOv3 trains with 2).
    """

    def __init__(
        self,
        head_dim: int,
        base: float = 100.0,
        normalize_coords: str = 'separate',
        shift_coords: Optional[float] = None,
        jitter_coords: Optional[float] = None,
        rescale_coords: Optional[float] = None,
    ):
        super().__init__()
        if head_dim % 4:
            raise PeraConfigError(f'rope: head width must be divisible by 4, got {head_dim}')
        if normalize_coords not in ROPE_NORMALIZE_COORDS:
            raise PeraConfigError(
                f'rope: normalize_coords must be one of {ROPE_NORMALIZE_COORDS}, '
                f'got {normalize_coords!r}'
            )
        for name, value, low in (
            ('shift_coords', shift_coords, 0.0),
            ('jitter_coords', jitter_coords, 1.0),
            ('rescale_coords', rescale_coords, 1.0),
        ):
            if value is not None and not (isinstance(value, (int, float)) and value >= low):
                raise PeraConfigError(
                    f'rope: {name} must be None or a number >= {low}, got {value!r}'
                )
        self.head_dim, self.base, self.normalize_coords = head_dim, float(base), normalize_coords
        self.shift_coords, self.jitter_coords = shift_coords, jitter_coords
        self.rescale_coords = rescale_coords

    def periods(self, device=None) -> torch.Tensor:
        """The D / 4 periods ``base ** (2 k / (D / 2))`` (computed, so never stale or unset)."""
        k = torch.arange(self.head_dim // 4, device=device, dtype=torch.float32)
        return self.base ** (2.0 * k / (self.head_dim // 2))

    def grid_coords(self, grid_hw: Tuple[int, int], device=None) -> torch.Tensor:
        """Normalised (row, col) coordinates (H * W, 2) of a grid, raster order."""
        h, w = (int(v) for v in grid_hw)
        if self.normalize_coords == 'separate':
            denom = (float(h), float(w))
        else:
            side = float(min(h, w) if self.normalize_coords == 'min' else max(h, w))
            denom = (side, side)
        rows = torch.arange(0.5, h, device=device, dtype=torch.float32) / denom[0]
        cols = torch.arange(0.5, w, device=device, dtype=torch.float32) / denom[1]
        grid = torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1)
        return (2.0 * grid - 1.0).flatten(0, 1)

    def augment(self, coords: torch.Tensor) -> torch.Tensor:
        """The train-time coordinate augmentation (identity in eval mode or when off)."""
        if not self.training:
            return coords
        if self.shift_coords is not None:
            s = float(self.shift_coords)
            coords = coords + torch.empty(2, device=coords.device).uniform_(-s, s)
        if self.jitter_coords is not None:
            j = math.log(self.jitter_coords)
            coords = coords * torch.empty(2, device=coords.device).uniform_(-j, j).exp()
        if self.rescale_coords is not None:
            r = math.log(self.rescale_coords)
            coords = coords * torch.empty(1, device=coords.device).uniform_(-r, r).exp()
        return coords

    def sincos(self, coords: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sin and cos (..., T, head_dim) of per-token coordinates (..., T, 2)."""
        periods = self.periods(coords.device)
        angles = 2 * math.pi * coords.float()[..., None] / periods
        angles = angles.flatten(-2)
        angles = torch.cat([angles, angles], dim=-1)
        return angles.sin(), angles.cos()

    def extra_repr(self) -> str:
        return (
            f'head_dim={self.head_dim}, base={self.base}, '
            f'normalize_coords={self.normalize_coords!r}, shift={self.shift_coords}, '
            f'jitter={self.jitter_coords}, rescale={self.rescale_coords}'
        )
