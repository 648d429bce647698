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
        self.sync_target()

    def init_weights(self):
        """Initialise the online networks, then copy the encoder into the target."""
        super().init_weights()
        self.sync_target()

    @torch.no_grad()
    def sync_target(self):
        """Make the target encoder an exact copy of the online encoder."""
        self.target.load_state_dict(self.backbone.state_dict())

    @torch.no_grad()
    def update_target(self, momentum: float):
        """EMA step: target <- m * target + (1 - m) * online, over all encoder parameters."""
        t, s = list(self.target.parameters()), list(self.backbone.parameters())
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1 - momentum)

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
        return self.loss_with_draws(images, self.draw(images.shape[0], grid_hw, images.device))

    def loss_with_draws(self, images: torch.Tensor, draws: Dict[str, torch.Tensor]):
        """The step on ``images`` (B, C, H, W) with given draws (see :meth:`draw`).

        The entry point for replaying recorded draws; :meth:`loss` calls it
        with fresh ones.

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
            x_trg = self.target.forward_patches(trg_pix, trg_ids, grid_hw)[:, 1:]

        x_vis = self.backbone.forward_patches(vis_pix, vis_ids, grid_hw)
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
        return losses
