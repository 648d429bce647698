# Copyright (c) pera-mm contributors. All rights reserved.
"""A DINOv2-style baseline in PerA's framework (same backbone, heads, hooks)."""

from typing import Dict, Optional

import torch
from mmpretrain.registry import MODELS

from ...structures import MASK_L, MASK_S
from ...utils.errors import PeraConfigError
from ..losses.dino_cls_loss import target_entropies
from .pera import PerA, derive_dims, flag_index_sets


@MODELS.register_module()
class DINOv2Baseline(PerA):
    """DINOv2-style self-distillation: the performance and ablation baseline of PerA.

    What differs from :class:`PerA`:

    - the teacher sees the full global views and no local crops;
    - the student sees full global views in which the l patches (iBOT block
      masks from ``DisjointMaskGenerator(mode='block')``) are replaced by the
      mask token before block ``mask_token_layer`` (0 in the shipped config, as
      in iBOT), and the local crops whole;
    - the DINO loss pairs every student crop with each teacher global crop of
      another index (:meth:`DINOClsLoss.forward_cross`);
    - an iBOT patch loss (``patch_loss``) distils the teacher's patch tokens
      into the student's at the masked patches;
    - KoLeo acts on the student's backbone cls tokens; there is no pixel
      prediction.

    Args:
        backbone (dict): student ``PerAViT``.
        projector (dict): DINO head, shared by the cls and patch losses.
        cls_loss (dict): ``DINOClsLoss`` of the cls tokens (plain path only).
        patch_loss (dict): ``DINOClsLoss`` of the iBOT patch tokens (its own centre).
        koleo_loss (dict, optional): ``KoLeoLoss``.
        koleo_crop_reduction (str): 'sum' or 'mean' over the global crops.
        monitor (bool): log collapse statistics every iteration.
        data_preprocessor (dict, optional): MMPretrain data preprocessor.
        init_cfg (dict, optional): MMEngine initialisation config.
    """

    def __init__(
        self,
        backbone: dict,
        projector: dict,
        cls_loss: dict,
        patch_loss: dict,
        koleo_loss: Optional[dict] = None,
        koleo_crop_reduction: str = 'sum',
        monitor: bool = True,
        data_preprocessor: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
    ):
        if cls_loss.get('chunk_size') or patch_loss.get('chunk_size'):
            raise PeraConfigError(
                'DINOv2Baseline: chunk_size is not supported (cross-crop '
                'pairing needs the logits); remove it from cls_loss and '
                'patch_loss'
            )
        super().__init__(
            backbone=backbone,
            projector=projector,
            cls_loss=cls_loss,
            koleo_loss=koleo_loss,
            koleo_crop_reduction=koleo_crop_reduction,
            monitor=monitor,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        self.patch_loss = MODELS.build(
            derive_dims(patch_loss, 'patch_loss', out_channels=self.projector.out_channels)
        )

    def loss_from_views(self, s_glob, t_glob, s_loc, t_loc, gmask, lmask, batch_size):
        """One baseline step on crop-major views and masks (see :meth:`PerA.loss_from_views`).

        The teacher local views ``t_loc`` are not used.
        """
        B, device = batch_size, s_glob.device
        nG = s_glob.shape[0] // B
        nL = 0 if s_loc is None else s_loc.shape[0] // B
        self.check_mask_grid(s_glob, gmask, 'global_masks')
        if not bool(((gmask & (MASK_S | MASK_L)) != 0).all()):
            raise PeraConfigError(
                'DINOv2Baseline: the student needs full global views (every '
                "patch s or l); use DisjointMaskGenerator(mode='block')"
            )
        l_mask = ((gmask & MASK_L) != 0).to(device, non_blocking=True)
        losses: Dict[str, torch.Tensor] = {}

        with torch.no_grad():
            t_seq = self.teacher.backbone(t_glob, path='sparse', keep_idx=None)
            t_logits = self.teacher.projector(t_seq[:, 0])
            targets = self.cls_loss.teacher_targets(t_logits).view(nG, B, -1)

        s_seq = self.backbone(
            s_glob, path='masked_dense', l_mask=l_mask, mask_token=self.mask_token
        )
        s_cls = [s_seq[:, 0]]
        if nL:
            self.check_mask_grid(s_loc, lmask, 'local_masks')
            s_idx = flag_index_sets(lmask, 'local_masks', s=MASK_S)['s'].to(device)
            s_cls.append(self.backbone(s_loc, path='sparse', keep_idx=s_idx, cls_only=True))
        s_logits = self.projector(torch.cat(s_cls)).view(nG + nL, B, -1)
        losses['loss_cls'] = self.cls_loss.forward_cross(s_logits, targets)

        if self.koleo_loss is not None:
            losses['loss_koleo'] = self._koleo(s_seq[:, 0].view(nG, B, -1))
        losses['loss_patch'] = self._ibot_loss(s_seq, t_seq, l_mask)

        if self.monitor:
            losses.update(self._collapse_stats(t_seq[:, 0], *target_entropies(targets)))
        return losses

    def _ibot_loss(self, s_seq, t_seq, l_mask):
        """iBOT: the teacher's patch targets at the masked patches vs the student's."""
        rows = l_mask.nonzero(as_tuple=True)
        if rows[0].numel() == 0:
            return s_seq.sum() * 0.0
        s_patch = self.projector(s_seq[:, 1:][rows])
        with torch.no_grad():
            t_patch = self.patch_loss.teacher_targets(self.teacher.projector(t_seq[:, 1:][rows]))
        return self.patch_loss(s_patch[None], t_patch[None])
