# Copyright (c) pera-mm contributors. All rights reserved.
"""I-JEPA: predict the EMA target encoder's features of masked blocks from a context block."""

import copy
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS

from ...structures import gather_tokens
from ...utils.errors import PeraConfigError, PeraDataError
from ..backbones.ijepa_vit import check_patch_grid
from ..utils.multiblock_mask_sampler import MultiBlockMaskSampler
from .pera import derive_dims


@MODELS.register_module()
class IJEPA(BaseSelfSupervisor):
    """I-JEPA (Assran et al., 2023) on images with any number of bands.

    One step: the EMA target encoder sees every patch; its final features go through
    an affine-free layer norm (eps ``target_norm_eps``, 1e-5 as in the reference) and
    are gathered per target block, block-major. The context encoder (``backbone``)
    sees only the context patches (positions added before the gather); the predictor
    (``neck``) predicts each target block from them as its own sequence. Loss: smooth
    L1 (``beta``) averaged over every predicted value. The target encoder is updated
    by EMA after the optimizer step (``LinearTeacherEMAHook``, through
    :meth:`update_teacher`).

    Masks come from ``mask_sampler`` (:class:`MultiBlockMaskSampler`, one call per
    batch, its call counter saved with the model), or are given to
    :meth:`loss_from_masks` directly.

    Args:
        backbone (dict): ``IJEPAViT`` config; the target encoder is built from the
            same config (drop path 0) and starts as an exact copy.
        neck (dict): ``IJEPAPredictor`` config; ``in_channels``, ``grid_size`` and
            ``num_heads`` default to the backbone's.
        mask_sampler (dict, optional): :class:`MultiBlockMaskSampler` arguments;
            ``grid_size`` defaults to the backbone's. Only one context block.
        beta (float): smooth-L1 threshold. Defaults to 1.0.
        target_norm_eps (float): eps of the targets' layer norm. Defaults to 1e-5.
        data_preprocessor (dict, optional): e.g. ``MultiBandDataPreprocessor``.
        init_cfg (dict, optional): MMEngine init config.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        mask_sampler: Optional[dict] = None,
        beta: float = 1.0,
        target_norm_eps: float = 1e-5,
        data_preprocessor: Optional[Union[dict, nn.Module]] = None,
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(backbone=backbone, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        vit = self.backbone
        if not hasattr(vit, 'forward_tokens'):
            raise PeraConfigError(
                f'{type(self).__name__}: the backbone must be an IJEPAViT (forward_tokens), '
                f'got {type(vit).__name__}'
            )
        neck = derive_dims(neck, 'neck', in_channels=vit.embed_dims, grid_size=tuple(vit.grid_size))
        neck.setdefault('num_heads', vit.arch_settings['num_heads'])
        self.neck = MODELS.build(neck)
        sampler_cfg = dict(mask_sampler or {})
        sampler_cfg.pop('type', None)
        sampler_cfg = derive_dims(sampler_cfg, 'mask_sampler', grid_size=tuple(vit.grid_size))
        if sampler_cfg.get('num_context', 1) != 1:
            raise PeraConfigError(
                f'{type(self).__name__}: mask_sampler.num_context must be 1 (one context '
                f'block, as in every I-JEPA recipe), got {sampler_cfg["num_context"]!r}'
            )
        self.mask_sampler = MultiBlockMaskSampler(**sampler_cfg)
        if not beta > 0:
            raise PeraConfigError(f'{type(self).__name__}: beta must be > 0, got {beta!r}')
        self.beta, self.target_norm_eps = float(beta), float(target_norm_eps)

        target_cfg = copy.deepcopy(backbone)
        target_cfg['drop_path_rate'] = 0.0
        target_cfg.pop('init_cfg', None)
        self.target_encoder = MODELS.build(target_cfg)
        self.target_encoder.requires_grad_(False)
        self.sync_teacher()

    # ------------------------------------------------------------ target encoder
    def init_weights(self):
        """Initialise the encoder and predictor, then copy the encoder into the target."""
        super().init_weights()
        self.sync_teacher()

    @torch.no_grad()
    def sync_teacher(self):
        """Make the target encoder an exact copy of the context encoder."""
        self.target_encoder.load_state_dict(self.backbone.state_dict())

    @torch.no_grad()
    def update_teacher(self, momentum: float):
        """EMA step: target <- m * target + (1 - m) * encoder.

        Over every encoder parameter, the fixed position table too (as the reference).
        """
        t, s = list(self.target_encoder.parameters()), list(self.backbone.parameters())
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1 - momentum)

    def extract_feat(self, inputs):
        """``mode='tensor'``: the target encoder's downstream features."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return self.target_encoder(inputs)

    # ------------------------------------------------------------------ step
    def predict_targets(
        self, x: torch.Tensor, context_idx: torch.Tensor, target_idx: Sequence[torch.Tensor]
    ) -> Dict[str, torch.Tensor]:
        """Targets and predictions of one batch for given masks.

        Args:
            x (Tensor): (B, C, H, W) normalised images.
            context_idx (Tensor): (B, K) context patch indices.
            target_idx (Sequence[Tensor]): one (B, M) tensor per target block.

        Returns:
            dict[str, Tensor]: ``target_features`` (B, N, D), ``targets`` and
            ``predictions`` (num_blocks * B, M, D) block-major, ``context_features``
            (B, K, D).
        """
        B = x.shape[0]
        grid = check_patch_grid(
            type(self).__name__, x.shape[-2:], self.backbone.patch_size, 'input size'
        )
        n = grid[0] * grid[1]
        context_idx = context_idx.to(x.device)
        target_idx = [t.to(x.device) for t in target_idx]
        for name, idx in [('context_idx', context_idx)] + [('target_idx', t) for t in target_idx]:
            if idx.dim() != 2 or idx.shape[0] != B or idx.numel() == 0:
                raise PeraDataError(
                    f'{type(self).__name__}: {name} must be a non-empty ({B}, K) index tensor, '
                    f'got shape {tuple(idx.shape)}'
                )
            if int(idx.min()) < 0 or int(idx.max()) >= n:
                raise PeraDataError(
                    f'{type(self).__name__}: {name} holds indices outside [0, {n}) of the '
                    f'{grid[0]}x{grid[1]} patch grid'
                )
        with torch.no_grad():
            h = self.target_encoder.forward_tokens(x)
            h = F.layer_norm(h.float(), (h.shape[-1],), eps=self.target_norm_eps)
            targets = torch.cat([gather_tokens(h, t) for t in target_idx], dim=0)
        z = self.backbone.forward_tokens(x, keep_idx=context_idx)
        pred = self.neck(z, context_idx, target_idx, grid)
        return dict(target_features=h, targets=targets, context_features=z, predictions=pred)

    def loss_from_masks(self, x, context_idx, target_idx) -> Dict[str, torch.Tensor]:
        """The smooth-L1 loss of one batch for given masks (see :meth:`predict_targets`)."""
        out = self.predict_targets(x, context_idx, target_idx)
        loss = F.smooth_l1_loss(out['predictions'].float(), out['targets'], beta=self.beta)
        return dict(loss=loss)

    def loss(self, inputs: Union[torch.Tensor, List[torch.Tensor]], data_samples: list):
        """Draw this batch's masks and return the loss.

        Args:
            inputs (Tensor | list[Tensor]): (B, C, H, W) images (or a one-view list).
            data_samples (list): unused.
        """
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        grid = check_patch_grid(
            type(self).__name__, x.shape[-2:], self.backbone.patch_size, 'input size'
        )
        sampler_grid = (self.mask_sampler.height, self.mask_sampler.width)
        if grid != sampler_grid:
            raise PeraDataError(
                f'{type(self).__name__}: inputs of {x.shape[-2]}x{x.shape[-1]} px make a '
                f'{grid[0]}x{grid[1]} patch grid, but the mask sampler draws on '
                f'{sampler_grid[0]}x{sampler_grid[1]} (backbone img_size '
                f'{self.backbone.img_size}); crop or resize the images to img_size'
            )
        context_idx, target_idx = self.mask_sampler(x.shape[0])
        return self.loss_from_masks(x, context_idx[0], target_idx)
