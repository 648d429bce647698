# Copyright (c) pera-mm contributors. All rights reserved.
"""Spatial affinity (SA): a cross-scale gram loss from an HR teacher, owned by a host."""

import math
from typing import Callable, Dict, Optional, Sequence

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError
from ..utils.cross_scale import HRToMRDownsample, check_scale

MODES = ('ema', 'snapshot')
SNAPSHOT_SOURCES = ('teacher', 'student')


@MODELS.register_module()
class SpatialAffinity(BaseModule):
    """The spatial-affinity component: match the student's MR patch affinities to an HR teacher's.

    A host (``IJEPA``, ``LatentMIM``, ``PerA``) owns it and calls it with its
    student's encoder outputs at the MR positions it sampled; the HR teacher (the
    host encoder's architecture) runs on the co-registered HR image (no grad), its
    patch features are downsampled s^2 -> 1 onto the MR grid
    (:class:`HRToMRDownsample`), gathered at the same positions, and the two sets
    are compared by :class:`GramLoss`.

    HR teacher modes (updated after each applied optimizer step by
    ``SpatialAffinityHook``; a skipped step changes nothing):

    - ``'ema'`` (the paper's): an EMA of the student encoder, momentum rising by
      cosine from ``momentum`` to ``end_momentum`` over training;
    - ``'snapshot'`` (DINOv3's Gram anchoring, here on a real HR image): a frozen
      copy of the host's EMA teacher (``snapshot_source='teacher'``) or of the
      student (``'student'``), refreshed every ``refresh_interval`` iterations.

    ``weight`` is an attribute the hook sets before every iteration (linear warm-up
    from 0 over the first ``weight_warmup`` fraction of training, then
    ``loss_weight``). At weight 0 the loss is computed without gradient and only
    logged (``monitor_sa_gram``), so the host's step is exactly the host alone.

    Args:
        encoder (dict): config of the HR teacher, the host encoder's architecture
            (the host passes its own teacher config; drop path 0).
        embed_dims (int): the encoder's feature width.
        mode (str): 'ema' or 'snapshot'. Defaults to 'ema'.
        snapshot_source (str): 'teacher' or 'student' (snapshot mode).
        refresh_interval (int): iterations between snapshot refreshes.
            Defaults to 1000 (ours; DINOv3 refreshes its Gram teacher every 10k).
        momentum (float): EMA momentum at iteration 0. Defaults to 0.996 (ours).
        end_momentum (float): EMA momentum at the last iteration. Defaults to 1.0.
        downsample (str): 'avg', 'bilinear' (default, the paper's best), 'bicubic'
            or 'linear' (learned projection).
        scale (int): HR / MR size ratio s. Defaults to 2. Data samples carrying
            metainfo ``scale`` must agree.
        loss (dict): the ``GramLoss`` config. Defaults to per-image, no clamping.
        loss_weight (float): weight in the host's total loss. Defaults to 1.0 (ours).
        weight_warmup (float): fraction of training over which the weight rises
            linearly from 0. Defaults to 0 (constant weight).
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(
        self,
        encoder: dict,
        embed_dims: int,
        mode: str = 'ema',
        snapshot_source: str = 'teacher',
        refresh_interval: int = 1000,
        momentum: float = 0.996,
        end_momentum: float = 1.0,
        downsample: str = 'bilinear',
        scale: int = 2,
        loss: Optional[dict] = None,
        loss_weight: float = 1.0,
        weight_warmup: float = 0.0,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        checks = dict(mode=(mode, MODES), snapshot_source=(snapshot_source, SNAPSHOT_SOURCES))
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise PeraConfigError(
                    f'spatial_affinity.{name} must be one of {allowed}, got {value!r}'
                )
        if not isinstance(refresh_interval, int) or refresh_interval < 1:
            raise PeraConfigError(
                f'spatial_affinity.refresh_interval must be an int >= 1, got {refresh_interval!r}'
            )
        if not 0 <= momentum <= end_momentum <= 1:
            raise PeraConfigError(
                f'spatial_affinity: need 0 <= momentum <= end_momentum <= 1, got '
                f'{momentum}, {end_momentum}'
            )
        if not loss_weight >= 0 or not 0 <= weight_warmup <= 1:
            raise PeraConfigError(
                f'spatial_affinity: need loss_weight >= 0 and weight_warmup in [0, 1], got '
                f'{loss_weight}, {weight_warmup}'
            )
        self.mode, self.snapshot_source = mode, snapshot_source
        self.refresh_interval = refresh_interval
        self.momentum, self.end_momentum = float(momentum), float(end_momentum)
        self.scale = scale
        self.loss_weight, self.weight_warmup = float(loss_weight), float(weight_warmup)
        self.weight = self.loss_weight
        self.hr_teacher = MODELS.build(encoder)
        self.hr_teacher.requires_grad_(False)
        self.downsample = HRToMRDownsample(downsample, scale, embed_dims)
        # the HR tokens come without gradient; the downsampling after them may learn
        self.gram_loss = MODELS.build(
            dict(dict(type='GramLoss', detach_teacher=False), **(loss or {}))
        )

    # ------------------------------------------------------------ HR teacher
    def init_weights(self):
        """Nothing to draw: the host copies an encoder into the HR teacher after its own init.

        Skipping the random init keeps the host's random stream (and so its weights and
        draws) exactly those of the host alone; the 'linear' projection is deterministic.
        """

    @torch.no_grad()
    def sync(self, source: torch.nn.Module):
        """Make the HR teacher an exact copy of ``source`` (an encoder of the same architecture)."""
        self.hr_teacher.load_state_dict(source.state_dict())

    @torch.no_grad()
    def ema_update(self, student: torch.nn.Module, momentum: float):
        """EMA step: HR teacher <- m * HR teacher + (1 - m) * student, over every parameter."""
        t, s = list(self.hr_teacher.parameters()), list(student.parameters())
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1 - momentum)

    def momentum_at(self, it: int, max_iters: int) -> float:
        """The EMA momentum of iteration ``it`` (cosine ``momentum`` -> ``end_momentum``)."""
        m0, m1 = self.momentum, self.end_momentum
        return m1 - (m1 - m0) * (math.cos(math.pi * it / max(max_iters, 1)) + 1) / 2

    def weight_at(self, it: int, max_iters: int) -> float:
        """The loss weight of iteration ``it`` (linear warm-up, then ``loss_weight``)."""
        warm = self.weight_warmup * max_iters
        if warm <= 0 or it >= warm:
            return self.loss_weight
        return self.loss_weight * it / warm

    def refresh_due(self, it: int) -> bool:
        """Whether the snapshot is refreshed after iteration ``it``."""
        return self.mode == 'snapshot' and (it + 1) % self.refresh_interval == 0

    # ------------------------------------------------------------------ loss
    def check_pair(self, mr: torch.Tensor, hr: torch.Tensor, data_samples=None):
        """One-line errors for an HR batch that is not ``scale`` x the MR batch."""
        scales = {
            ds.metainfo['scale']
            for ds in (data_samples or [])
            if hasattr(ds, 'metainfo') and 'scale' in ds.metainfo
        }
        if scales and scales != {self.scale}:
            raise PeraDataError(
                f'spatial_affinity: the data samples carry scale {sorted(scales)} but the '
                f'component is configured with scale={self.scale}'
            )
        if hr.dim() != 4 or hr.shape[:2] != mr.shape[:2]:
            raise PeraDataError(
                f"spatial_affinity: the HR batch must be (B, C, sH, sW) with the MR batch's B "
                f'and C, got HR {tuple(hr.shape)} for MR {tuple(mr.shape)}'
            )
        check_scale(mr.shape[-2:], hr.shape[-2:], self.scale, 'spatial_affinity')

    def forward(
        self,
        student_feats: torch.Tensor,
        mr_idx: torch.Tensor,
        mr_grid: Sequence[int],
        hr_images: torch.Tensor,
        encode: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """The weighted gram loss of one batch.

        Args:
            student_feats (Tensor): (B, K, D) student encoder outputs (before any
                host head) at the MR positions ``mr_idx``.
            mr_idx (Tensor): (B, K) raster indices on the MR patch grid.
            mr_grid (tuple[int, int]): the MR patch grid.
            hr_images (Tensor): (B, C, sH, sW) the HR pairs.
            encode (callable): ``encode(encoder, images)`` -> (B, s^2 h w, D) patch
                tokens in raster order of the HR grid (the host's dense path).

        Returns:
            dict[str, Tensor]: ``loss_spatial_affinity`` (weight > 0) and
            ``monitor_sa_gram`` (the unweighted loss, logged).
        """
        with torch.no_grad():
            hr_tokens = encode(self.hr_teacher, hr_images)
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.weight > 0):
            target = self.downsample(hr_tokens, mr_grid, mr_idx.to(hr_tokens.device))
            gram = self.gram_loss(student_feats, target)
        out = dict(monitor_sa_gram=gram.detach())
        if self.weight > 0:
            out['loss_spatial_affinity'] = self.weight * gram
        return out


def build_spatial_affinity(cfg: Optional[dict], encoder: dict, embed_dims: int):
    """The host's :class:`SpatialAffinity` from its ``spatial_affinity`` config (None: none).

    Build it last in the host's ``__init__`` and call its ``sync`` after the host's
    own initialisation.
    """
    if cfg is None:
        return None
    cfg = dict(cfg)
    cfg.setdefault('type', 'SpatialAffinity')
    for key in ('encoder', 'embed_dims'):
        if key in cfg:
            raise PeraConfigError(
                f'spatial_affinity.{key} is derived from the host encoder; remove it from the '
                f'config'
            )
    # built on a forked random stream: the host alone and the host with the component
    # draw the same numbers (its weights are copied from the host encoder anyway)
    with torch.random.fork_rng(devices=[]):
        return MODELS.build(dict(cfg, encoder=encoder, embed_dims=embed_dims))
