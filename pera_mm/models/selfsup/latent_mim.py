# Copyright (c) pera-mm contributors. All rights reserved.
"""LatentMIM: masked image modelling in the latent space of an EMA target encoder."""

import copy
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError, PeraDataError
from ..backbones.latent_mim_vit import gap_grid, gap_patchify
from ..losses.similarity_target_loss import mean_patch_similarity
from .spatial_affinity import build_spatial_affinity


def hr_gap_patches(hr, patch_size, patch_gap, scale, offset_row=None, offset_col=None):
    """The HR patches under LatentMIM's gap windows, on the HR patch grid.

    MR window (u, v), at offset (r, c) inside its ``patch_size + patch_gap`` cell, covers
    the same ground as the HR window of ``scale * patch_size`` px at offset
    (s r, s c) inside HR cell (u, v) of ``scale * (patch_size + patch_gap)`` px. That
    window is cut into the s x s HR patches (s u + i, s v + j) of ``patch_size`` px.

    Args:
        hr (Tensor): (B, C, sH, sW) HR images.
        patch_size (int): P.
        patch_gap (int): the MR gap.
        scale (int): s.
        offset_row (Tensor, optional): (B, gh, gw) the MR windows' first rows in their cells.
        offset_col (Tensor, optional): (B, gh, gw) their first columns.

    Returns:
        tuple: (B, s^2 gh gw, P * P * C) patch vectors in raster order of the
        (s gh, s gw) HR grid ((p, q, c) order inside a patch, as ``gap_patchify``), and
        that grid.
    """
    B, C = hr.shape[:2]
    s, P = scale, patch_size
    gh, gw = gap_grid(hr.shape[-2:], s * P, s * patch_gap, 'HR inputs')
    off_r = None if offset_row is None else s * offset_row
    off_c = None if offset_col is None else s * offset_col
    win = gap_patchify(hr, s * P, s * patch_gap, off_r, off_c)  # (B, gh*gw, sP*sP*C)
    win = win.view(B, gh, gw, s, P, s, P, C).permute(0, 1, 3, 2, 5, 4, 6, 7)
    return win.reshape(B, s * gh * s * gw, P * P * C), (s * gh, s * gw)


@MODELS.register_module()
class LatentMIM(BaseSelfSupervisor):
    """LatentMIM (Wei et al.): predict the target encoder's latents of masked patches.

    One step, as the authors' code (``models_lmim.py``):

    1. draws (:meth:`draw`): a window offset per cell (rows, then columns) and
       a uniform noise per patch; ``argsort(noise)`` gives ``num_visible``
       visible patches and the rest as targets, in shuffle order;
    2. patchify with the gap: one ``patch_size`` window per
       ``patch_size + patch_gap`` cell;
    3. EMA of the target encoder towards the online encoder as it stands
       BEFORE this step's optimizer update (``target = m * target + (1 - m) *
       online`` over all encoder parameters, the head included), when
       ``update_ema`` is set;
    4. target encoder (no grad) on the target patches only; online encoder on
       the visible ones; decoder (``neck``) predicts the targets' latents;
    5. ``loss`` (patch InfoNCE) plus, with ``sim_loss``, the similarity
       regulariser on the predictions and on the visible outputs (cls
       dropped), towards ``sim_target``.

    ``momentum``, ``sim_target`` and ``update_ema`` are attributes that
    ``LatentMIMScheduleHook`` sets before every iteration. Loss keys contain
    ``loss``; ``monitor_*`` keys are only logged.

    **Skipped steps.** The EMA of step 3 happens before the optimizer wrapper
    knows whether the step is finite. The hook therefore brackets every
    iteration that updates the target: :meth:`snapshot_target` before the
    forward, then :meth:`commit_target` after an applied optimizer step or
    :meth:`rollback_target` after a skipped one (``last_step_skipped`` of
    ``AutoAmpOptimWrapper``), so a skipped step leaves the target bitwise
    unchanged. Outside the forward every parameter is in the same layout
    (FSDP: this rank's shard), so the snapshot and the rollback match.

    Args:
        backbone (dict): ``LatentMIMViT``; the target encoder is built from the
            same config (drop path 0) and starts as an exact copy.
        neck (dict): ``LatentMIMDecoder``; ``in_channels`` defaults to the
            backbone width.
        loss (dict): ``PatchInfoNCELoss``.
        sim_loss (dict, optional): ``SimilarityTargetLoss``; None switches the
            regulariser off (the reference config's ``avg_sim_coeff: 0``).
        patch_gap (int): pixels between windows. Defaults to 4.
        num_visible (int): visible patches per image. Defaults to 20.
        momentum (float): EMA momentum until a hook sets it. Defaults to 0.99.
        sim_target (float): regulariser target until a hook sets it. Defaults to 0.75.
        data_preprocessor (dict, optional): MMPretrain data preprocessor.
        init_cfg (dict, optional): MMEngine init config.
        spatial_affinity (dict, optional): :class:`SpatialAffinity` settings (its HR
            teacher is built from the target encoder's config). The inputs are then
            ``[mr, hr]``; the component compares the online encoder's outputs at the
            VISIBLE patches (before the MLP head) with the HR teacher's features of the
            same windows on the HR image (see :func:`hr_gap_patches`), downsampled
            to the MR cell grid.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        loss: dict,
        sim_loss: Optional[dict] = None,
        patch_gap: int = 4,
        num_visible: int = 20,
        momentum: float = 0.99,
        sim_target: float = 0.75,
        data_preprocessor: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
        spatial_affinity: Optional[dict] = None,
    ):
        if not isinstance(patch_gap, int) or patch_gap < 0:
            raise PeraConfigError(f'LatentMIM: patch_gap must be an int >= 0, got {patch_gap!r}')
        if not isinstance(num_visible, int) or num_visible < 1:
            raise PeraConfigError(
                f'LatentMIM: num_visible must be an int >= 1, got {num_visible!r}'
            )
        neck = dict(neck)
        super().__init__(backbone=backbone, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        neck.setdefault('in_channels', self.backbone.embed_dims)
        self.neck = MODELS.build(neck)
        self.loss_module = MODELS.build(loss)
        self.sim_loss = MODELS.build(sim_loss) if sim_loss else None
        self.patch_gap, self.num_visible = patch_gap, num_visible
        self.momentum, self.sim_target, self.update_ema = momentum, sim_target, True
        target = copy.deepcopy(backbone)
        target['drop_path_rate'] = 0.0
        target.pop('init_cfg', None)
        self.target = MODELS.build(target)
        self.target.requires_grad_(False)
        self._target_snapshot, self._snapshot_pending = None, False
        self.spatial_affinity = build_spatial_affinity(
            spatial_affinity, target, self.backbone.embed_dims
        )
        self.sync_target()

    def init_weights(self):
        """Initialise the online networks, then copy the encoder into the target."""
        super().init_weights()
        self.sync_target()

    @torch.no_grad()
    def sync_target(self):
        """Make the target encoder an exact copy of the online encoder."""
        self.target.load_state_dict(self.backbone.state_dict())
        if getattr(self, 'spatial_affinity', None) is not None:
            self.spatial_affinity.sync(self.backbone)

    def spatial_affinity_sources(self):
        """The encoders ``SpatialAffinityHook`` may copy into the HR teacher."""
        return dict(student=self.backbone, teacher=self.target)

    @torch.no_grad()
    def update_target(self, momentum: float):
        """EMA step: target <- m * target + (1 - m) * online, over all encoder parameters."""
        t, s = list(self.target.parameters()), list(self.backbone.parameters())
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1 - momentum)

    @torch.no_grad()
    def snapshot_target(self):
        """Keep a copy of the target encoder, to undo the coming EMA if its step is skipped."""
        params = [p.detach() for p in self.target.parameters()]
        kept = self._target_snapshot
        layout = [(p.shape, p.dtype, p.device) for p in params]
        if kept is None or [(k.shape, k.dtype, k.device) for k in kept] != layout:
            self._target_snapshot = [p.clone() for p in params]
        else:
            torch._foreach_copy_(kept, params)
        self._snapshot_pending = True

    @torch.no_grad()
    def rollback_target(self):
        """Put the target back to its last snapshot (the optimizer step was skipped)."""
        if self._snapshot_pending:
            params = [p.detach() for p in self.target.parameters()]
            torch._foreach_copy_(params, self._target_snapshot)
        self._snapshot_pending = False

    def commit_target(self):
        """Keep the EMA'd target (the optimizer step was applied)."""
        self._snapshot_pending = False

    def pending_target_snapshot(self):
        """The snapshot a coming skipped step would restore (CPU copies), or None if none is due.

        Mid accumulation window the target has already moved by the window's EMA;
        a checkpoint saved there must carry the snapshot, or a resumed run could
        not undo that EMA when the window's step is skipped.
        """
        if not self._snapshot_pending:
            return None
        return [t.detach().cpu().clone() for t in self._target_snapshot]

    @torch.no_grad()
    def restore_target_snapshot(self, snapshot):
        """Take a snapshot saved by :meth:`pending_target_snapshot` (None: no window is open)."""
        if snapshot is None:
            self._snapshot_pending = False
            return
        params = [p.detach() for p in self.target.parameters()]
        shapes = [tuple(p.shape) for p in params]
        if [tuple(t.shape) for t in snapshot] != shapes:
            raise PeraConfigError(
                f"LatentMIM: the checkpoint's target snapshot holds {len(snapshot)} tensors "
                f"that do not match the target encoder's {len(params)} parameters"
            )
        self._target_snapshot = [t.to(p.device, p.dtype).clone() for t, p in zip(snapshot, params)]
        self._snapshot_pending = True

    def extract_feat(self, inputs):
        """``mode='tensor'``: features of the online encoder (used downstream)."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return self.backbone(inputs)

    # ------------------------------------------------------------------ draws
    def grid_of(self, images: torch.Tensor):
        """The cell grid of ``images``; a one-line error for a wrong size or band count."""
        if images.ndim != 4 or images.shape[1] != self.backbone.in_channels:
            raise PeraDataError(
                f'LatentMIM: inputs must be (B, {self.backbone.in_channels}, H, W) '
                f'(in_channels), got {tuple(images.shape)}'
            )
        gh, gw = gap_grid(images.shape[-2:], self.backbone.patch_size, self.patch_gap)
        if self.num_visible >= gh * gw:
            raise PeraConfigError(
                f'LatentMIM: num_visible ({self.num_visible}) must be smaller than the '
                f'{gh}x{gw} = {gh * gw} patches of {images.shape[-2]}x{images.shape[-1]} inputs'
            )
        return gh, gw

    def draw(self, batch_size: int, grid_hw, device) -> Dict[str, torch.Tensor]:
        """The random draws of one step, in the reference's order.

        Returns:
            dict: ``gap_offset_row`` and ``gap_offset_col`` (B, gh, gw) in
            ``[0, patch_gap)``, and ``noise`` (B, gh * gw) uniform in [0, 1).
        """
        gh, gw = grid_hw
        shape = (batch_size, gh, gw)
        if self.patch_gap:
            rows = torch.randint(0, self.patch_gap, shape, device=device)
            cols = torch.randint(0, self.patch_gap, shape, device=device)
        else:
            rows = cols = torch.zeros(shape, dtype=torch.long, device=device)
        noise = torch.rand(batch_size, gh * gw, device=device)
        return dict(gap_offset_row=rows, gap_offset_col=cols, noise=noise)

    # ------------------------------------------------------------------- loss
    def loss(
        self, inputs: Union[torch.Tensor, List[torch.Tensor]], data_samples: list
    ) -> Dict[str, torch.Tensor]:
        """Losses of one step on a batch of images (draws made here)."""
        images = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        grid_hw = self.grid_of(images)
        draws = self.draw(images.shape[0], grid_hw, images.device)
        if self.spatial_affinity is None:
            return self.loss_with_draws(images, draws)
        hr = inputs[1] if isinstance(inputs, (list, tuple)) and len(inputs) > 1 else None
        return self.loss_with_draws(images, draws, hr, data_samples)

    def loss_with_draws(
        self,
        images: torch.Tensor,
        draws: Dict[str, torch.Tensor],
        hr_images: Optional[torch.Tensor] = None,
        data_samples: Optional[list] = None,
    ):
        """The step on ``images`` (B, C, H, W) with given draws (see :meth:`draw`).

        The entry point for replaying recorded draws; :meth:`loss` calls it
        with fresh ones. With ``spatial_affinity``, ``hr_images`` (B, C, sH, sW)
        are the HR pairs and ``loss_spatial_affinity`` / ``monitor_sa_gram`` are added.

        Returns:
            dict[str, Tensor]: ``loss_infonce``, ``loss_sim_pred``,
            ``loss_sim_vis`` (with ``sim_loss``) and ``monitor_sim_*``.
        """
        grid_hw = self.grid_of(images)
        patches = gap_patchify(
            images,
            self.backbone.patch_size,
            self.patch_gap,
            draws['gap_offset_row'],
            draws['gap_offset_col'],
        )
        shuffle = torch.argsort(draws['noise'].to(images.device), dim=1)
        vis_ids, trg_ids = shuffle[:, : self.num_visible], shuffle[:, self.num_visible :]
        dim = patches.shape[-1]
        vis_pix = torch.gather(patches, 1, vis_ids[..., None].expand(-1, -1, dim))
        trg_pix = torch.gather(patches, 1, trg_ids[..., None].expand(-1, -1, dim))

        if self.training and self.update_ema:
            self.update_target(self.momentum)
        with torch.no_grad():
            x_trg = self.target(trg_pix, trg_ids, grid_hw)[:, 1:]

        sa_terms = {}
        if self.spatial_affinity is None:
            x_vis = self.backbone(vis_pix, vis_ids, grid_hw)
        else:  # the features before the MLP head, then the head: the same x_vis
            x_vis, sa_terms = self._with_spatial_affinity(
                images, hr_images, data_samples, draws, vis_pix, vis_ids, grid_hw
            )
        x_pred = self.neck(x_vis, vis_ids, trg_ids, grid_hw)

        losses = dict(loss_infonce=self.loss_module(x_pred, x_trg))
        if self.sim_loss is not None:
            losses['loss_sim_pred'], sim_pred = self.sim_loss(x_pred, self.sim_target)
            losses['loss_sim_vis'], sim_vis = self.sim_loss(x_vis[:, 1:], self.sim_target)
        else:
            sim_pred, sim_vis = mean_patch_similarity(x_pred), mean_patch_similarity(x_vis[:, 1:])
        sim_trg = mean_patch_similarity(x_trg)
        losses.update(
            monitor_sim_pred=sim_pred.detach(),
            monitor_sim_vis=sim_vis.detach(),
            monitor_sim_trg=sim_trg,
        )
        losses.update(sa_terms)
        return losses

    def _with_spatial_affinity(self, images, hr_images, samples, draws, vis_pix, vis_ids, grid):
        """The online encoder's visible outputs (head applied) and the component's terms."""
        if hr_images is None:
            raise PeraDataError(
                'LatentMIM: spatial_affinity is configured but the inputs hold no HR images; '
                'give [mr, hr] (PairedHRMRDataset + PackHRMRInputs)'
            )
        sa = self.spatial_affinity
        sa.check_pair(images, hr_images, samples)
        vit = self.backbone
        feats = vit.forward_patches(vis_pix, vis_ids, grid, with_head=False)
        x_vis = vit.head(feats) if vit.head is not None else feats

        def encode(encoder, hr):
            patches, hr_grid = hr_gap_patches(
                hr, vit.patch_size, self.patch_gap, sa.scale,
                draws['gap_offset_row'], draws['gap_offset_col'],
            )  # fmt: skip
            ids = torch.arange(patches.shape[1], device=hr.device).expand(hr.shape[0], -1)
            return encoder.forward_patches(patches, ids, hr_grid, with_head=False)[:, 1:]

        return x_vis, sa(feats[:, 1:], vis_ids, grid, hr_images, encode)
