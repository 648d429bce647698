# Copyright (c) pera-mm contributors. All rights reserved.
"""Per-crop patch masks for PerA (disjoint s / l / t sets) and baselines."""

import math
from numbers import Number
from typing import Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...structures import MASK_L, MASK_S, MASK_T
from ...utils.errors import PeraConfigError

_MODES = ('disjoint', 'full', 'block')


def disjoint_counts(num_patches: int, mask_ratios: Sequence[float]) -> Tuple[int, int, int]:
    """Sizes (n_s, n_l, n_t) of the s / l / t sets on a grid of
    ``num_patches`` patches.

    ``n_s = round(L * s)``, ``n_sl = round(L * (1 - t))``,
    ``n_l = n_sl - n_s``, ``n_t = L - n_sl`` (Python ``round``), so the three
    sets always partition the grid. With an l ratio of 0 the l set is empty
    by definition (no rounding slack).
    """
    ratio_s, ratio_l, ratio_t = mask_ratios
    n_s = round(num_patches * ratio_s)
    n_sl = n_s if ratio_l == 0 else round(num_patches * (1 - ratio_t))
    return n_s, n_sl - n_s, num_patches - n_sl


@TRANSFORMS.register_module()
class DisjointMaskGenerator(BaseTransform):
    """Draw, for every crop pair, which patches the student sees, which get
    mask tokens and which the teacher sees.

    Masks are uint8 bit flags per patch in raster order: :data:`MASK_S` (1,
    student-visible), :data:`MASK_L` (2, mask token / pixel target) and
    :data:`MASK_T` (4, teacher-visible).

    Modes:

    - ``'disjoint'`` (PerA): per image and per crop, an independent random
      permutation of the grid is split into disjoint s / l / t sets with
      sizes from :func:`disjoint_counts`. Local crops keep s and t only (the
      l positions get 0 and are dropped).
    - ``'full'`` (ablation without masks): every patch is ``S | T``.
    - ``'block'`` (DINOv2/iBOT-style baseline): with probability
      ``block_mask_prob`` a global crop gets a BEiT-style block mask covering
      a fraction drawn uniformly from ``block_mask_ratio``; masked patches
      are ``L | T``, the others ``S | T`` (the teacher sees the full view).
      Local crops are all ``S | T``.

    Required keys: ``img`` (list of views as produced by
    :class:`PerAMultiCropViews`), ``num_global_crops``, ``num_local_crops``.
    Added keys: ``global_masks`` uint8 (num_global_crops, Lg) and
    ``local_masks`` uint8 (num_local_crops, Ll), L = (H / p) * (W / p).

    Args:
        patch_size (int): Patch side in pixels. Defaults to 16.
        mask_ratios (tuple): (s, l, t) fractions, non-negative, summing to 1.
            ``l`` may be 0 (no pixel prediction). Defaults to
            (0.2, 0.2, 0.6) (released code; the paper text uses 0.3/0.2/0.5).
        mode (str): ``'disjoint'``, ``'full'`` or ``'block'``. Defaults to
            ``'disjoint'``.
        block_mask_ratio (tuple): Range of the masked fraction in
            ``'block'`` mode. Defaults to (0.1, 0.5).
        block_mask_prob (float): Probability that a global crop is masked in
            ``'block'`` mode. Defaults to 0.5.
        block_aspect_ratio (tuple): Aspect-ratio range of the blocks.
            Defaults to (0.3, 1 / 0.3).
        block_min_patches (int): Smallest block area in patches. Defaults
            to 4.
    """

    def __init__(
        self,
        patch_size: int = 16,
        mask_ratios: Sequence[float] = (0.2, 0.2, 0.6),
        mode: str = 'disjoint',
        block_mask_ratio: Tuple[float, float] = (0.1, 0.5),
        block_mask_prob: float = 0.5,
        block_aspect_ratio: Tuple[float, float] = (0.3, 1 / 0.3),
        block_min_patches: int = 4,
    ) -> None:
        if not (
            isinstance(patch_size, (int, np.integer))
            and not isinstance(patch_size, bool)
            and patch_size > 0
        ):
            raise PeraConfigError(f'patch_size must be an int > 0, got {patch_size!r}')
        self.patch_size = int(patch_size)

        ok = (
            isinstance(mask_ratios, Sequence)
            and len(mask_ratios) == 3
            and all(isinstance(r, Number) and r >= 0 for r in mask_ratios)
        )
        if not ok or abs(sum(mask_ratios) - 1.0) > 1e-6:
            raise PeraConfigError(
                'mask_ratios must be 3 non-negative numbers '
                '(s, l, t) summing to 1, got '
                f'{mask_ratios!r}'
            )
        self.mask_ratios = tuple(float(r) for r in mask_ratios)
        if mode not in _MODES:
            raise PeraConfigError(f'mode must be one of {_MODES}, got {mode!r}')
        self.mode = mode
        if mode == 'disjoint' and (self.mask_ratios[0] == 0 or self.mask_ratios[2] == 0):
            raise PeraConfigError(
                f'mask_ratios s and t must be > 0 in disjoint mode, got {mask_ratios!r}'
            )

        ok = (
            isinstance(block_mask_ratio, Sequence)
            and len(block_mask_ratio) == 2
            and all(isinstance(r, Number) for r in block_mask_ratio)
            and 0 <= block_mask_ratio[0] <= block_mask_ratio[1] <= 1
        )
        if not ok:
            raise PeraConfigError(
                'block_mask_ratio must be (min, max) with '
                f'0 <= min <= max <= 1, got {block_mask_ratio!r}'
            )
        self.block_mask_ratio = tuple(float(r) for r in block_mask_ratio)
        if not (isinstance(block_mask_prob, Number) and 0 <= block_mask_prob <= 1):
            raise PeraConfigError(f'block_mask_prob must be in [0, 1], got {block_mask_prob!r}')
        self.block_mask_prob = float(block_mask_prob)
        ok = (
            isinstance(block_aspect_ratio, Sequence)
            and len(block_aspect_ratio) == 2
            and all(isinstance(r, Number) for r in block_aspect_ratio)
            and 0 < block_aspect_ratio[0] <= block_aspect_ratio[1]
        )
        if not ok:
            raise PeraConfigError(
                'block_aspect_ratio must be (min, max) with '
                f'0 < min <= max, got {block_aspect_ratio!r}'
            )
        self.block_aspect_ratio = tuple(float(r) for r in block_aspect_ratio)
        if not (isinstance(block_min_patches, (int, np.integer)) and block_min_patches > 0):
            raise PeraConfigError(
                f'block_min_patches must be an int > 0, got {block_min_patches!r}'
            )
        self.block_min_patches = int(block_min_patches)

    # ----------------------------------------------------------------- grid
    def _grid(self, views: Sequence[np.ndarray], kind: str) -> Tuple[int, int]:
        """Patch grid (h, w) shared by ``views``; errors name the size."""
        shapes = {tuple(v.shape[:2]) for v in views}
        if len(shapes) != 1:
            raise PeraConfigError(f'all {kind} crops must have the same size, got {sorted(shapes)}')
        height, width = shapes.pop()
        p = self.patch_size
        if height % p or width % p:
            raise PeraConfigError(
                f'{kind} crop size {height}x{width} is not divisible by patch_size {p}'
            )
        return height // p, width // p

    def _counts(self, num_patches: int, kind: str, size: str, local: bool) -> Tuple[int, int, int]:
        n_s, n_l, n_t = disjoint_counts(num_patches, self.mask_ratios)
        needs_l = not local and self.mask_ratios[1] > 0
        if n_s <= 0 or n_t <= 0 or n_l < 0 or (needs_l and n_l <= 0):
            raise PeraConfigError(
                f'mask_ratios {self.mask_ratios} leave an empty set on the '
                f'{kind} crop {size} ({num_patches} patches of '
                f'{self.patch_size}px): n_s={n_s}, n_l={n_l}, n_t={n_t}'
            )
        return n_s, n_l, n_t

    # ---------------------------------------------------------------- modes
    def _disjoint(self, num_crops: int, num_patches: int, counts, local: bool) -> np.ndarray:
        n_s, n_l, _ = counts
        # One independent random permutation per crop (row).
        perm = np.argsort(np.random.random_sample((num_crops, num_patches)), axis=1)
        flags = np.empty(num_patches, dtype=np.uint8)
        flags[:n_s] = MASK_S
        flags[n_s : n_s + n_l] = 0 if local else MASK_L
        flags[n_s + n_l :] = MASK_T
        masks = np.empty((num_crops, num_patches), dtype=np.uint8)
        np.put_along_axis(masks, perm, flags[None, :].repeat(num_crops, 0), axis=1)
        return masks

    def _block(self, grid_h: int, grid_w: int) -> np.ndarray:
        """A boolean (grid_h * grid_w,) block mask covering ~a random ratio.

        Rectangles of random area and aspect ratio are added while they do
        not overshoot the target; we stop at the target or after a run of
        unproductive attempts (tiny leftovers cannot always be covered).
        """
        num_patches = grid_h * grid_w
        mask = np.zeros((grid_h, grid_w), dtype=bool)
        target = int(round(np.random.uniform(*self.block_mask_ratio) * num_patches))
        log_aspect = (math.log(self.block_aspect_ratio[0]), math.log(self.block_aspect_ratio[1]))
        covered, misses = 0, 0
        while covered < target and misses < 20:
            left_over = target - covered
            low = min(self.block_min_patches, left_over)
            area = np.random.uniform(low, left_over)
            aspect = math.exp(np.random.uniform(*log_aspect))
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if not (0 < h <= grid_h and 0 < w <= grid_w):
                misses += 1
                continue
            top = np.random.randint(0, grid_h - h + 1)
            left = np.random.randint(0, grid_w - w + 1)
            window = mask[top : top + h, left : left + w]
            new = h * w - int(window.sum())
            if 0 < new <= left_over:
                window[...] = True
                covered += new
                misses = 0
            else:
                misses += 1
        return mask.reshape(-1)

    def _make(
        self, num_crops: int, grid: Tuple[int, int], kind: str, size: str, local: bool
    ) -> np.ndarray:
        num_patches = grid[0] * grid[1]
        if self.mode == 'disjoint':
            counts = self._counts(num_patches, kind, size, local)
            return self._disjoint(num_crops, num_patches, counts, local)
        masks = np.full((num_crops, num_patches), MASK_S | MASK_T, np.uint8)
        if self.mode == 'block' and not local:
            for row in masks:
                if np.random.rand() < self.block_mask_prob:
                    row[self._block(*grid)] = MASK_L | MASK_T
        return masks

    def transform(self, results: dict) -> dict:
        """Add ``global_masks`` and ``local_masks`` for the views in
        ``results['img']``."""
        for key in ('img', 'num_global_crops', 'num_local_crops'):
            if key not in results:
                raise KeyError(
                    f"DisjointMaskGenerator needs results['{key}'] (run PerAMultiCropViews first)"
                )
        views = results['img']
        n_g = int(results['num_global_crops'])
        n_l = int(results['num_local_crops'])
        if not isinstance(views, (list, tuple)) or len(views) != 2 * (n_g + n_l):
            got = len(views) if isinstance(views, (list, tuple)) else type(views).__name__
            raise PeraConfigError(
                f"results['img'] must be a list of 2 * ({n_g} + {n_l}) views, got {got}"
            )
        global_grid = self._grid(views[: 2 * n_g], 'global')
        size = '{}x{}'.format(*views[0].shape[:2])
        results['global_masks'] = self._make(n_g, global_grid, 'global', size, local=False)
        if n_l:
            local_grid = self._grid(views[2 * n_g :], 'local')
            size = '{}x{}'.format(*views[2 * n_g].shape[:2])
            results['local_masks'] = self._make(n_l, local_grid, 'local', size, local=True)
        else:
            results['local_masks'] = np.zeros((0, 0), dtype=np.uint8)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(patch_size={self.patch_size}, '
            f'mask_ratios={self.mask_ratios}, mode={self.mode!r}, '
            f'block_mask_ratio={self.block_mask_ratio}, '
            f'block_mask_prob={self.block_mask_prob}, '
            f'block_aspect_ratio={self.block_aspect_ratio}, '
            f'block_min_patches={self.block_min_patches})'
        )
