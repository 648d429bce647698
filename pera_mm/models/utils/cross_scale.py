# Copyright (c) pera-mm contributors. All rights reserved.
"""Mid-/high-resolution patch correspondence and the s^2 -> 1 downsampling of HR features.

An MR image H x W and its co-registered HR pair sH x sW are patchified with the same
patch size, so MR patch (u, v) covers the same ground as the s^2 HR patches
(s u + i, s v + j), 0 <= i, j < s. Indices are raster indices of the patch grids.
"""

from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...structures import gather_tokens
from ...utils.errors import PeraConfigError, PeraDataError

DOWNSAMPLE_MODES = ('avg', 'bilinear', 'bicubic', 'linear')


def hr_grid_of(mr_grid: Sequence[int], scale: int) -> Tuple[int, int]:
    """The HR patch grid ``(s h, s w)`` of an MR grid ``(h, w)``."""
    return int(mr_grid[0]) * scale, int(mr_grid[1]) * scale


def hr_children(mr_idx: torch.Tensor, mr_grid: Sequence[int], scale: int) -> torch.Tensor:
    """HR raster indices of the s^2 HR patches under each MR patch.

    Args:
        mr_idx (Tensor): (B, K) raster indices on the MR grid ``(h, w)``.
        mr_grid (tuple[int, int]): the MR patch grid.
        scale (int): s.

    Returns:
        Tensor: (B, K, s * s), child ``i * s + j`` being HR patch (s u + i, s v + j)
        on the ``(s h, s w)`` grid.
    """
    w = int(mr_grid[1])
    u, v = mr_idx // w, mr_idx % w
    ar = torch.arange(scale, device=mr_idx.device)
    rows = (scale * u)[..., None, None] + ar[:, None]  # (B, K, s, 1)
    cols = (scale * v)[..., None, None] + ar[None, :]  # (B, K, 1, s)
    return (rows * (scale * w) + cols).flatten(-2)


def check_scale(mr_hw: Sequence[int], hr_hw: Sequence[int], scale: int, field: str = 'inputs'):
    """A one-line error unless the HR image is exactly ``scale`` x the MR image."""
    want = (int(mr_hw[0]) * scale, int(mr_hw[1]) * scale)
    got = (int(hr_hw[0]), int(hr_hw[1]))
    if got != want:
        raise PeraDataError(
            f'{field}: the HR image is {got[0]}x{got[1]} px but must be scale ({scale}) x the '
            f'MR image {int(mr_hw[0])}x{int(mr_hw[1])} = {want[0]}x{want[1]} px'
        )


class HRToMRDownsample(nn.Module):
    """Downsample HR patch features s^2 -> 1 onto the MR grid, at given MR positions.

    Modes (PyTorch's ``interpolate`` with ``align_corners=False`` and
    ``antialias=True`` for the two filters: at s = 2 a plain bilinear resize reads
    exactly the 2 x 2 children with weights 1/4, i.e. average pooling, whereas the
    antialiased filters are stretched by s and reach the neighbouring cells):

    - 'avg': the mean of the s^2 children (a box filter of one MR cell);
    - 'bilinear': a triangle filter of half-width s HR patches (at s = 2 the weights
      1/8, 3/8, 3/8, 1/8 along each axis over 4 HR patches; renormalised at borders);
    - 'bicubic': the cubic filter (a = -0.5) of half-width 2 s HR patches;
    - 'linear': a learned projection of the s^2 concatenated children
      (s^2 D -> D), initialised to the average (so it starts as 'avg').

    Args:
        mode (str): one of ``DOWNSAMPLE_MODES``. Defaults to 'bilinear' (the
            paper's best).
        scale (int): s. Defaults to 2.
        embed_dims (int, optional): feature width, needed by 'linear'.
    """

    def __init__(self, mode: str = 'bilinear', scale: int = 2, embed_dims: int = None):
        super().__init__()
        if mode not in DOWNSAMPLE_MODES:
            raise PeraConfigError(
                f'HRToMRDownsample: mode must be one of {DOWNSAMPLE_MODES}, got {mode!r}'
            )
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise PeraConfigError(f'HRToMRDownsample: scale must be an int >= 1, got {scale!r}')
        self.mode, self.scale = mode, scale
        self.proj = None
        if mode == 'linear':
            if not embed_dims:
                raise PeraConfigError("HRToMRDownsample: mode 'linear' needs embed_dims")
            s2 = scale * scale
            self.proj = nn.Linear(s2 * embed_dims, embed_dims)
            with torch.no_grad():
                self.proj.weight.copy_(torch.eye(embed_dims).repeat(1, s2) / s2)
                self.proj.bias.zero_()

    def forward(self, hr_tokens: torch.Tensor, mr_grid: Sequence[int], mr_idx: torch.Tensor):
        """MR-grid features of the HR patch tokens at ``mr_idx``.

        Args:
            hr_tokens (Tensor): (B, s^2 h w, D) HR patch tokens in raster order.
            mr_grid (tuple[int, int]): the MR patch grid (h, w).
            mr_idx (Tensor): (B, K) MR raster indices to return.

        Returns:
            Tensor: (B, K, D).
        """
        s = self.scale
        hh, hw = hr_grid_of(mr_grid, s)
        B, n, D = hr_tokens.shape
        if n != hh * hw:
            raise PeraDataError(
                f'HRToMRDownsample: {n} HR tokens do not make the {hh}x{hw} grid of scale {s} '
                f'x the {mr_grid[0]}x{mr_grid[1]} MR grid'
            )
        if self.mode in ('avg', 'linear'):
            children = hr_children(mr_idx, mr_grid, s)  # (B, K, s^2)
            K = children.shape[1]
            feats = gather_tokens(hr_tokens, children.flatten(1)).view(B, K, s * s, D)
            if self.mode == 'avg':
                return feats.mean(2)
            return self.proj(feats.flatten(2))
        fmap = hr_tokens.transpose(1, 2).reshape(B, D, hh, hw)
        dtype = fmap.dtype
        if fmap.dtype not in (torch.float32, torch.float64):
            fmap = fmap.float()  # antialiased kernels need full precision on CPU
        low = F.interpolate(
            fmap,
            size=(int(mr_grid[0]), int(mr_grid[1])),
            mode=self.mode,
            align_corners=False,
            antialias=True,
        ).to(dtype)
        return gather_tokens(low.flatten(2).transpose(1, 2), mr_idx)
