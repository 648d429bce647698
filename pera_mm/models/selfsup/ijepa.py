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
from .spatial_affinity import build_spatial_affinity


def _ijepa_dense_tokens(encoder, images):
    """Final-normed tokens of every patch (no cls token in I-JEPA)."""
    return encoder.forward_tokens(images)


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
        spatial_affinity (dict, optional): :class:`SpatialAffinity` settings (its HR
            teacher is built from the target encoder's config). The inputs are then
            ``[mr, hr]``; the component compares the context encoder's outputs at
            the CONTEXT patches (the host's sample, before the predictor) with the
            HR teacher's features at the same MR positions. The host's term is then
            logged as ``loss_ijepa`` (``loss`` is the total).
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
        spatial_affinity: Optional[dict] = None,
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
        self.spatial_affinity = build_spatial_affinity(spatial_affinity, target_cfg, vit.embed_dims)
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
        if getattr(self, 'spatial_affinity', None) is not None:
            self.spatial_affinity.sync(self.backbone)

    def spatial_affinity_sources(self):
        """The encoders ``SpatialAffinityHook`` may copy into the HR teacher."""
        return dict(student=self.backbone, teacher=self.target_encoder)

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
            h = self.target_encoder(x, tokens_only=True)
            h = F.layer_norm(h.float(), (h.shape[-1],), eps=self.target_norm_eps)
            targets = torch.cat([gather_tokens(h, t) for t in target_idx], dim=0)
        z = self.backbone(x, keep_idx=context_idx, tokens_only=True)
        pred = self.neck(z, context_idx, target_idx, grid)
        return dict(target_features=h, targets=targets, context_features=z, predictions=pred)

    def loss_from_masks(
        self, x, context_idx, target_idx, hr_images=None, data_samples=None
    ) -> Dict[str, torch.Tensor]:
        """The smooth-L1 loss of one batch for given masks (see :meth:`predict_targets`).

        With ``spatial_affinity``, ``hr_images`` (B, C, sH, sW) are the HR pairs of ``x``.
        """
        out = self.predict_targets(x, context_idx, target_idx)
        loss = F.smooth_l1_loss(out['predictions'].float(), out['targets'], beta=self.beta)
        if self.spatial_affinity is None:
            return dict(loss=loss)
        if hr_images is None:
            raise PeraDataError(
                f'{type(self).__name__}: spatial_affinity is configured but the inputs hold '
                f'no HR images; give [mr, hr] (PairedHRMRDataset + PackHRMRInputs)'
            )
        self.spatial_affinity.check_pair(x, hr_images, data_samples)
        grid = (x.shape[-2] // self.backbone.patch_size, x.shape[-1] // self.backbone.patch_size)
        losses = dict(loss_ijepa=loss)
        losses.update(
            self.spatial_affinity(
                out['context_features'], context_idx, grid, hr_images, _ijepa_dense_tokens
            )
        )
        return losses

    def loss(self, inputs: Union[torch.Tensor, List[torch.Tensor]], data_samples: list):
        """Draw this batch's masks and return the loss.

        Args:
            inputs (Tensor | list[Tensor]): (B, C, H, W) images (or a one-view list);
                ``[mr, hr]`` with ``spatial_affinity`` (other views are ignored without).
            data_samples (list): their metainfo ``scale`` is checked by the component.
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
        if self.spatial_affinity is None:
            return self.loss_from_masks(x, context_idx[0], target_idx)
        hr = inputs[1] if isinstance(inputs, (list, tuple)) and len(inputs) > 1 else None
        return self.loss_from_masks(x, context_idx[0], target_idx, hr, data_samples)
