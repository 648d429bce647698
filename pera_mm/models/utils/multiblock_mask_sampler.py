# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA's multi-block mask sampler: target blocks and a context block around them."""

import math
from typing import Callable, Iterable, List, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_rank

from ...utils.errors import PeraConfigError, PeraDataError

_2_32 = 1 << 32
_GOLDEN = 0x9E3779B1


def _mix32(*values: int) -> int:
    """A 32-bit seed that depends on every value (splitmix64 steps)."""
    h = 0
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) + 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0xFFFFFFFF


#: values of the block-size draw ``r`` tried when checking that ``min_keep`` is reachable
_R_CHECK_POINTS = 4001


def _check_range(owner, name, value, low=0.0, high=None):
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
        and low <= value[0] <= value[1]
        and (high is None or value[1] <= high)
    )
    if not ok:
        bound = f'{low} <= lo <= hi' + (f' <= {high}' if high is not None else '')
        raise PeraConfigError(
            f'{owner}: {name} must be a pair (lo, hi) with {bound}, got {value!r}'
        )
    return float(value[0]), float(value[1])


class MultiBlockMaskSampler(nn.Module):
    """Multi-block masks of I-JEPA, for a whole batch at once.

    Rules (those of the reference collator, ``parity-ijepa.md``):

    - Once per batch, one uniform ``r`` per block kind sets both the scale and the
      aspect ratio: ``max_keep = int(H * W * scale)``, ``h = round(sqrt(max_keep * ar))``,
      ``w = round(sqrt(max_keep / ar))``, each decremented while it is ``>=`` the grid
      side. Target blocks first, then the (square) context block.
    - Per image: ``num_targets`` target blocks, then ``num_context`` context blocks,
      each at ``top = randint(0, H - h)``, ``left = randint(0, W - w)`` (exclusive upper
      bound: no block touches the last row or column). Without ``allow_overlap`` the
      context is cut by the complement of every target block of its image and accepted
      only with more than ``min_keep`` patches; after ``max_tries`` failed draws the
      last target constraint is dropped, and so on. Targets pass the same test.
    - Index lists are ascending raster indices (``row * W + col``); every target list
      of the batch is cut to the batch-minimum target length, every context list to
      the batch-minimum context length (the lowest indices are kept).

    Randomness: the sizes come from a generator seeded by ``(seed, call)`` (the same
    on every rank, as in the reference), the positions from one seeded by ``(seed,
    rank, call)``. ``call`` is a persistent buffer, so a checkpoint saves it and a
    resumed run draws the masks an uninterrupted run would have drawn. With ``seed=0``
    the sizes of call ``i`` are the reference's.

    Settings that can never give more than ``min_keep`` patches (the reference would
    loop forever) are a one-line error at construction.

    Args:
        grid_size (tuple[int, int]): patch grid (H, W).
        num_targets (int): target blocks per image. Defaults to 4.
        target_scale (tuple): range of the target-block scale. Defaults to (0.15, 0.2).
        target_aspect_ratio (tuple): range of its aspect ratio h/w. Defaults to (0.75, 1.5).
        context_scale (tuple): range of the context-block scale. Defaults to (0.85, 1.0).
        num_context (int): context blocks per image. Defaults to 1.
        min_keep (int): a block must keep more than this many patches. Defaults to 10.
        allow_overlap (bool): do not cut the targets out of the context. Defaults to False.
        max_tries (int): failed draws before one target constraint is dropped. Defaults to 20.
        seed (int): base seed of the draws. Defaults to 0.
    """

    def __init__(
        self,
        grid_size: Sequence[int],
        num_targets: int = 4,
        target_scale: Tuple[float, float] = (0.15, 0.2),
        target_aspect_ratio: Tuple[float, float] = (0.75, 1.5),
        context_scale: Tuple[float, float] = (0.85, 1.0),
        num_context: int = 1,
        min_keep: int = 10,
        allow_overlap: bool = False,
        max_tries: int = 20,
        seed: int = 0,
    ):
        super().__init__()
        owner = type(self).__name__
        self.height, self.width = (int(v) for v in grid_size)
        if self.height < 2 or self.width < 2:
            raise PeraConfigError(f'{owner}: the patch grid must be at least 2x2, got {grid_size}')
        for name, value in dict(
            num_targets=num_targets, num_context=num_context, max_tries=max_tries
        ).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PeraConfigError(f'{owner}: {name} must be a positive int, got {value!r}')
        if not isinstance(min_keep, int) or min_keep < 0:
            raise PeraConfigError(f'{owner}: min_keep must be an int >= 0, got {min_keep!r}')
        if not isinstance(seed, int) or seed < 0:
            raise PeraConfigError(f'{owner}: seed must be an int >= 0, got {seed!r}')
        self.target_scale = _check_range(owner, 'target_scale', target_scale, high=1.0)
        self.context_scale = _check_range(owner, 'context_scale', context_scale, high=1.0)
        self.target_aspect_ratio = _check_range(
            owner, 'target_aspect_ratio', target_aspect_ratio, low=1e-6
        )
        self.num_targets, self.num_context = num_targets, num_context
        self.min_keep, self.allow_overlap = min_keep, bool(allow_overlap)
        self.max_tries, self.seed = max_tries, seed
        self.register_buffer('calls', torch.zeros((), dtype=torch.int64))
        self._check_reachable()

    # ------------------------------------------------------------------ sizes
    def block_size(self, r: float, scale, aspect_ratio) -> Tuple[int, int]:
        """(h, w) of a block for the uniform draw ``r`` (one draw sets scale and ratio)."""
        s = scale[0] + r * (scale[1] - scale[0])
        max_keep = int(self.height * self.width * s)
        ar = aspect_ratio[0] + r * (aspect_ratio[1] - aspect_ratio[0])
        h = int(round(math.sqrt(max_keep * ar)))
        w = int(round(math.sqrt(max_keep / ar)))
        return min(h, self.height - 1), min(w, self.width - 1)

    def _check_reachable(self):
        rs = [i / (_R_CHECK_POINTS - 1) for i in range(_R_CHECK_POINTS)]
        kinds = (
            ('target', self.target_scale, self.target_aspect_ratio),
            ('context', self.context_scale, (1.0, 1.0)),
        )
        for kind, scale, ar in kinds:
            smallest = min((h * w, r, h, w) for r in rs for h, w in [self.block_size(r, scale, ar)])
            if smallest[0] <= self.min_keep:
                raise PeraConfigError(
                    f'{type(self).__name__}: a {kind} block can be as small as '
                    f'{smallest[2]}x{smallest[3]} = {smallest[0]} patches on the '
                    f'{self.height}x{self.width} grid ({kind}_scale {scale}), but every block '
                    f'must keep more than min_keep={self.min_keep}; lower min_keep or raise '
                    f'{kind}_scale'
                )

    # ------------------------------------------------------------------ blocks
    def _rect(self, top, left, h, w, value):
        grid = torch.full((self.height, self.width), 1 - value, dtype=torch.int32)
        grid[top : top + h, left : left + w] = value
        return grid

    def _block(self, size, randint: Callable[[int], int], allowed=None):
        """One block: (indices, complement) under the ``allowed`` constraints."""
        h, w = size
        tries, timeout = 0, self.max_tries
        while True:
            top, left = randint(self.height - h), randint(self.width - w)
            mask = self._rect(top, left, h, w, 1)
            if allowed:
                for region in allowed[: max(len(allowed) - tries, 0)]:
                    mask = mask * region
            idx = torch.nonzero(mask.flatten()).flatten()
            if idx.numel() > self.min_keep:
                return idx, self._rect(top, left, h, w, 0)
            timeout -= 1
            if timeout == 0:
                tries, timeout = tries + 1, self.max_tries

    def _sample(self, batch_size: int, uniform: Callable[[], float], randint):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise PeraDataError(f'{type(self).__name__}: batch_size must be >= 1, got {batch_size}')
        target_size = self.block_size(uniform(), self.target_scale, self.target_aspect_ratio)
        context_size = self.block_size(uniform(), self.context_scale, (1.0, 1.0))
        targets, contexts = [], []
        for _ in range(batch_size):
            blocks, complements = [], []
            for _ in range(self.num_targets):
                idx, comp = self._block(target_size, randint)
                blocks.append(idx)
                complements.append(comp)
            targets.append(blocks)
            allowed = None if self.allow_overlap else complements
            contexts.append(
                [self._block(context_size, randint, allowed)[0] for _ in range(self.num_context)]
            )
        self.last_untruncated = dict(targets=targets, contexts=contexts)
        k_t = min(i.numel() for blocks in targets for i in blocks)
        k_c = min(i.numel() for blocks in contexts for i in blocks)
        target_idx = [
            torch.stack([targets[b][j][:k_t] for b in range(batch_size)])
            for j in range(self.num_targets)
        ]
        context_idx = [
            torch.stack([contexts[b][j][:k_c] for b in range(batch_size)])
            for j in range(self.num_context)
        ]
        return context_idx, target_idx

    # ------------------------------------------------------------------ entry points
    def forward(self, batch_size: int) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Masks of the next batch of this rank (advances the call counter).

        Returns:
            tuple: ``context_idx`` (``num_context`` tensors (B, K_ctx)) and
            ``target_idx`` (``num_targets`` tensors (B, K_tgt)), int64 on the CPU.
        """
        call = int(self.calls)
        self.calls += 1
        # torch's CPU generator keeps only the low 32 bits of a seed
        size_gen = torch.Generator().manual_seed((call + self.seed * _GOLDEN) % _2_32)
        pos_gen = torch.Generator().manual_seed(_mix32(self.seed, get_rank(), call))
        return self.sample_with_generators(batch_size, size_gen, pos_gen)

    def sample_with_generators(self, batch_size, size_generator, position_generator):
        """Masks from the given generators, drawn as the reference draws.

        ``torch.rand(1)`` for each size, ``torch.randint(0, high, (1,))`` for each corner
        coordinate. Seeding them with the reference's counter and global seed replays its masks.
        Does not advance the call counter.
        """
        return self._sample(
            batch_size,
            lambda: torch.rand(1, generator=size_generator).item(),
            lambda high: int(torch.randint(0, high, (1,), generator=position_generator)),
        )

    def sample_from_draws(
        self, batch_size, size_draws: Sequence[float], position_draws: Iterable[int]
    ):
        """Test-only: masks from recorded draws.

        Args:
            batch_size (int): images in the batch.
            size_draws (Sequence[float]): the two uniform draws (target, context) in [0, 1).
            position_draws (Iterable[int]): the corner draws in order (top, left per
                attempt; targets of image 0, its context, then image 1, ...). Each must
                lie in ``[0, high)`` of its draw.
        """
        sizes, positions = iter(size_draws), iter(position_draws)

        def randint(high):
            value = int(next(positions))
            if not 0 <= value < high:
                raise PeraDataError(f'recorded position draw {value} is outside [0, {high})')
            return value

        return self._sample(batch_size, lambda: float(next(sizes)), randint)
