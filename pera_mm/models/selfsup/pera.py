# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA: self-distillation between aligned views that see disjoint patches."""

import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS

from ...structures import MASK_L, MASK_S, MASK_T, flag_indices, gather_tokens, patchify
from ...utils.errors import PeraConfigError, PeraDataError
from ..utils.feature_stats import mean_pairwise_cosine
from .spatial_affinity import build_spatial_affinity

#: forms of the teacher EMA update (see ``PerA.update_teacher``)
EMA_UPDATES = ('lerp', 'mul_add')


def derive_dims(cfg: Optional[dict], name: str, **derived) -> Optional[dict]:
    """A copy of a module config with the ``derived`` fields filled in.

    A field the config already states must agree with the derived value, so a
    head that is wider than its backbone fails here with the field's name.
    """
    if cfg is None:
        return None
    cfg = dict(cfg)
    for key, value in derived.items():
        if cfg.get(key) is None:
            cfg[key] = value
        elif cfg[key] != value:
            raise PeraConfigError(
                f'{name}.{key} is {cfg[key]} but must be {value} (derived '
                f'from the model); remove it from the config'
            )
    return cfg


def _pera_dense_patches(encoder, images):
    """Final-normed patch tokens of every patch (the sparse path keeping all of them)."""
    return encoder(images, path='sparse', keep_idx=None)[:, 1:]


def flag_index_sets(masks: torch.Tensor, field: str, **flags) -> Dict[str, torch.Tensor]:
    """``{name: flag_indices(masks, flag)}`` for each named flag of a mask batch."""
    return {name: flag_indices(masks, flag, field) for name, flag in flags.items()}


@MODELS.register_module()
class PerA(BaseSelfSupervisor):
    """PerA: self-distillation between spatially aligned views that see disjoint patches.

    A student (``backbone`` + ``projector`` + ``predictor``) and an EMA teacher
    (``teacher.backbone`` + ``teacher.projector``) look at the same crops. The
    student sees the s patches and predicts the pixels of the l patches through
    mask tokens; the teacher sees only the t patches. Losses: DINO on the cls
    outputs of crop k vs crop k, pixel reconstruction at l, KoLeo on the
    student's global head outputs. Every path is sparse: no compute is spent on
    tokens a network does not keep (masks without l patches simply insert no
    mask tokens; masks with every patch visible run the full grid).

    Inputs (from ``PerAMultiCropViews`` + ``DisjointMaskGenerator``): a list of
    view batches ``[student globals, teacher globals, student locals, teacher
    locals]`` and per-sample ``global_masks`` / ``local_masks`` flag maps (see
    ``pera_mm.structures``). Loss keys contain ``loss`` (summed by MMEngine's
    ``parse_losses``); ``monitor_*`` keys are only logged.

    Args:
        backbone (dict): student ``PerAViT``; the teacher is built from the same
            config with ``drop_path_rate=0`` and starts as an exact copy.
        projector (dict): DINO head (student and teacher); ``in_channels``
            defaults to the backbone width.
        cls_loss (dict): ``DINOClsLoss`` (holds the centre); ``out_channels``
            defaults to the projector's.
        predictor (dict, optional): ``PixelPredictionHead``; ``in_channels``,
            ``patch_size`` and ``img_channels`` default to the backbone's. None
            disables pixel prediction (ablation); then the masks must have no l
            patches.
        pixel_loss (dict, optional): ``PixelMSELoss``, given with ``predictor``.
        koleo_loss (dict, optional): ``KoLeoLoss``.
        koleo_crop_reduction (str): 'sum' (released code) or 'mean' over the
            global crops.
        pixel_target (str): 'student' (released code: the student's colour-
            augmented view) or 'teacher' (the teacher view; with teacher colour
            jitter off this is the un-augmented crop, the paper's figure).
        monitor (bool): log collapse statistics every iteration.
        ema_update (str): how :meth:`update_teacher` moves the teacher:
            ``'lerp'`` (default, one ``torch._foreach_lerp_`` pass over the
            teacher) or ``'mul_add'`` (a ``_foreach_mul_`` and a
            ``_foreach_add_`` pass, the earlier form). Equal to rounding.
        data_preprocessor (dict, optional): MMPretrain data preprocessor.
        init_cfg (dict, optional): MMEngine initialisation config.
        spatial_affinity (dict, optional): :class:`SpatialAffinity` settings (its
            HR teacher is built from the teacher backbone's config). The inputs then
            end with ``nG`` more batches, the HR pairs of the global crops (same box
            and flips, ``scale`` x the size). The component sees the global crops
            only, at the l positions: the student's mask-token outputs there (the
            pixel head's input, before any head) against the HR teacher's dense
            patch features downsampled to the MR grid.
    """

    def __init__(
        self,
        backbone: dict,
        projector: dict,
        cls_loss: dict,
        predictor: Optional[dict] = None,
        pixel_loss: Optional[dict] = None,
        koleo_loss: Optional[dict] = None,
        koleo_crop_reduction: str = 'sum',
        pixel_target: str = 'student',
        monitor: bool = True,
        data_preprocessor: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
        spatial_affinity: Optional[dict] = None,
        ema_update: str = 'lerp',
    ):
        checks = dict(
            koleo_crop_reduction=(koleo_crop_reduction, ('sum', 'mean')),
            pixel_target=(pixel_target, ('student', 'teacher')),
            ema_update=(ema_update, EMA_UPDATES),
        )
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise PeraConfigError(
                    f'{type(self).__name__}: {name} must be one of {allowed}, got {value!r}'
                )
        if (predictor is None) != (pixel_loss is None):
            raise PeraConfigError(
                f'{type(self).__name__}: predictor and pixel_loss must be '
                f'given together (both None disables pixel prediction)'
            )
        super().__init__(backbone=backbone, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        vit = self.backbone
        projector = derive_dims(projector, 'projector', in_channels=vit.embed_dims)
        predictor = derive_dims(
            predictor,
            'predictor',
            in_channels=vit.embed_dims,
            patch_size=vit.patch_size,
            img_channels=vit.in_channels,
        )
        self.projector = MODELS.build(projector)
        self.predictor = MODELS.build(predictor) if predictor else None
        self.cls_loss = MODELS.build(
            derive_dims(cls_loss, 'cls_loss', out_channels=self.projector.out_channels)
        )
        self.pixel_loss = MODELS.build(pixel_loss) if pixel_loss else None
        self.koleo_loss = MODELS.build(koleo_loss) if koleo_loss else None
        self.koleo_crop_reduction, self.pixel_target = koleo_crop_reduction, pixel_target
        self.monitor = monitor
        self.ema_update = ema_update
        self.mask_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dims))

        teacher_backbone = copy.deepcopy(backbone)
        teacher_backbone['drop_path_rate'] = 0.0
        self.teacher = nn.ModuleDict(
            dict(backbone=MODELS.build(teacher_backbone), projector=MODELS.build(projector))
        )
        self.teacher.requires_grad_(False)
        self.spatial_affinity = build_spatial_affinity(
            spatial_affinity, teacher_backbone, vit.embed_dims
        )
        if self.spatial_affinity is not None and self.predictor is None:
            raise PeraConfigError(
                f'{type(self).__name__}: spatial_affinity reads the student at the l patches; '
                f'it needs a predictor and masks with l patches'
            )
        self.sync_teacher()

    # --------------------------------------------------------------- teacher
    def init_weights(self):
        """Initialise the student, then copy it into the teacher."""
        super().init_weights()
        nn.init.normal_(self.mask_token, std=0.02)
        self.sync_teacher()

    @torch.no_grad()
    def sync_teacher(self):
        """Make the teacher an exact copy of the student's backbone and projector."""
        self.teacher.backbone.load_state_dict(self.backbone.state_dict())
        self.teacher.projector.load_state_dict(self.projector.state_dict())
        if getattr(self, 'spatial_affinity', None) is not None:
            self.spatial_affinity.sync(self.backbone)

    def spatial_affinity_sources(self):
        """The encoders ``SpatialAffinityHook`` may copy into the HR teacher."""
        return dict(student=self.backbone, teacher=self.teacher.backbone)

    def ema_pairs(self):
        """(teacher, student) parameter lists that the EMA updates."""
        t = list(self.teacher.backbone.parameters()) + list(self.teacher.projector.parameters())
        s = list(self.backbone.parameters()) + list(self.projector.parameters())
        return t, s

    @torch.no_grad()
    def update_teacher(self, momentum: float):
        """EMA step: teacher <- m * teacher + (1 - m) * student (backbone + projector)."""
        t, s = self.ema_pairs()
        if self.ema_update == 'lerp':
            torch._foreach_lerp_(t, s, 1 - momentum)  # t + (1 - m) * (s - t), one pass
        else:
            torch._foreach_mul_(t, momentum)
            torch._foreach_add_(t, s, alpha=1 - momentum)

    def extract_feat(self, inputs):
        """``mode='tensor'``: dense features of the teacher backbone (used downstream)."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return self.teacher.backbone(inputs)

    # ------------------------------------------------------------------ loss
    def loss(self, inputs: List[torch.Tensor], data_samples: list) -> Dict[str, torch.Tensor]:
        """Losses of one step from the packed views and masks.

        Args:
            inputs (list[Tensor]): ``2 * (nG + nL)`` view batches (B, C, H, W).
            data_samples (list[DataSample]): with ``global_masks`` (nG, L) and
                ``local_masks`` (nL, l) per sample.
        """
        gm = torch.stack([torch.as_tensor(ds.global_masks) for ds in data_samples])
        lm = torch.stack([torch.as_tensor(ds.local_masks) for ds in data_samples])
        B, nG, nL = gm.shape[0], gm.shape[1], lm.shape[1]
        n_hr = nG if self.spatial_affinity is not None else 0
        if len(inputs) != 2 * (nG + nL) + n_hr:
            extra = f' and {n_hr} HR global crops' if n_hr else ''
            raise PeraDataError(
                f'{type(self).__name__}: expected {2 * (nG + nL) + n_hr} views for '
                f'{nG} global and {nL} local crops{extra}, got {len(inputs)}'
            )
        # crop-major: row j * B + b is crop j of sample b (masks stay on the CPU)
        gm = gm.transpose(0, 1).reshape(nG * B, -1)
        lm = lm.transpose(0, 1).reshape(nL * B, -1)
        s_glob = torch.cat(inputs[:nG])
        t_glob = torch.cat(inputs[nG : 2 * nG])
        s_loc = torch.cat(inputs[2 * nG : 2 * nG + nL]) if nL else None
        t_loc = torch.cat(inputs[2 * nG + nL : 2 * (nG + nL)]) if nL else None
        # subclasses without the component keep the 7-argument signature
        hr = dict(hr_glob=torch.cat(inputs[2 * (nG + nL) :])) if n_hr else {}
        return self.loss_from_views(s_glob, t_glob, s_loc, t_loc, gm, lm, B, **hr)

    def check_mask_grid(self, views: torch.Tensor, masks: torch.Tensor, field: str):
        """Masks must cover exactly the backbone's patch grid of these views.

        A shape check, free on every step: a 16-px mask generator paired with a
        14-px backbone fails here instead of training on misplaced patches.
        """
        p = self.backbone.patch_size
        h, w = views.shape[-2:]
        if h % p or w % p or masks.shape[1] != (h // p) * (w // p):
            raise PeraConfigError(
                f'{field}: {masks.shape[1]} patches per crop, but {h}x{w} crops on the '
                f"backbone's patch_size {p} make a {h // p}x{w // p} grid; the mask "
                f"generator's patch_size must equal the backbone's"
            )

    def loss_from_views(self, s_glob, t_glob, s_loc, t_loc, gmask, lmask, batch_size, hr_glob=None):
        """The PerA step on crop-major view batches and flag masks.

        Args:
            s_glob (Tensor): (nG * B, C, H, W) student global views.
            t_glob (Tensor): (nG * B, C, H, W) teacher global views.
            s_loc (Tensor | None): (nL * B, C, h, w) student local views.
            t_loc (Tensor | None): (nL * B, C, h, w) teacher local views.
            gmask (Tensor): (nG * B, L) global flag masks (CPU avoids host syncs).
            lmask (Tensor): (nL * B, l) local flag masks.
            batch_size (int): B.
            hr_glob (Tensor, optional): (nG * B, C, sH, sW) HR pairs of the global
                crops, for ``spatial_affinity``.

        Returns:
            dict[str, Tensor]: ``loss_*`` terms and ``monitor_*`` statistics.
        """
        B, device = batch_size, s_glob.device
        nG = s_glob.shape[0] // B
        nL = 0 if s_loc is None else s_loc.shape[0] // B
        self.check_mask_grid(s_glob, gmask, 'global_masks')
        g = {
            k: v.to(device, non_blocking=True)
            for k, v in flag_index_sets(gmask, 'global_masks', s=MASK_S, l=MASK_L, t=MASK_T).items()
        }
        if self.predictor is not None and g['l'].shape[1] == 0:
            raise PeraConfigError(
                f'{type(self).__name__}: a predictor is configured but the '
                f'masks have no l patches; give mask_ratios with l > 0, or '
                f'set predictor=None and pixel_loss=None'
            )
        if self.predictor is None and g['l'].shape[1]:
            raise PeraConfigError(
                f'{type(self).__name__}: the masks have l patches but no '
                f'predictor is configured; set mask_ratios[1] = 0'
            )
        if nL:
            self.check_mask_grid(s_loc, lmask, 'local_masks')
            loc = {
                k: v.to(device, non_blocking=True)
                for k, v in flag_index_sets(lmask, 'local_masks', s=MASK_S, t=MASK_T).items()
            }
        losses = {}

        # ---------------- teacher: cls + t patches, no grad
        with torch.no_grad():
            t_cls_g = self.teacher.backbone(t_glob, path='sparse', keep_idx=g['t'], cls_only=True)
            t_cls = [t_cls_g]
            if nL:
                t_cls.append(
                    self.teacher.backbone(t_loc, path='sparse', keep_idx=loc['t'], cls_only=True)
                )

        # ---------------- student: cls + s patches, mask tokens at l from mid-depth
        # (the local crops' cls-only sparse path rides along; PerAViT packs the two)
        local = dict(local_x=s_loc, local_idx=loc['s']) if nL else {}
        s_cls_g, l_out, *s_cls_l = self.backbone(
            s_glob, path='student', s_idx=g['s'], l_idx=g['l'], mask_token=self.mask_token, **local
        )
        s_cls = [s_cls_g, *s_cls_l]

        # ---------------- DINO on the cls outputs, crop k vs crop k (heads run once)
        n_crops = nG + nL
        rows, s_head_global, target_stats = self.cls_loss.forward_heads(
            self.projector,
            self.teacher.projector,
            torch.cat(s_cls),
            torch.cat(t_cls),
            student_logit_rows=nG * B if self.koleo_loss is not None else 0,
            stats_rows=nG * B if self.monitor else 0,
        )
        rows = rows.view(n_crops, B)
        losses['loss_cls_global'] = rows[:nG].mean() * nG / n_crops
        if nL:
            losses['loss_cls_local'] = rows[nG:].mean() * nL / n_crops

        # ---------------- KoLeo on the student's global head outputs, per crop
        if self.koleo_loss is not None:
            losses['loss_koleo'] = self._koleo(s_head_global.view(nG, B, -1))

        # ---------------- pixel prediction at the l patches
        if self.predictor is not None:
            src = s_glob if self.pixel_target == 'student' else t_glob
            target = gather_tokens(patchify(src, self.backbone.patch_size), g['l'])
            losses['loss_pixel'] = self.pixel_loss(self.predictor(l_out), target)

        if self.spatial_affinity is not None:
            losses.update(self._spatial_affinity(s_glob, hr_glob, l_out, g['l']))

        if self.monitor:
            losses.update(self._collapse_stats(t_cls_g, *target_stats))
        return losses

    def _spatial_affinity(self, s_glob, hr_glob, l_out, l_idx):
        """The SA terms on the global crops at the l positions (see the class notes)."""
        if hr_glob is None:
            raise PeraDataError(
                f'{type(self).__name__}: spatial_affinity is configured but no HR global '
                f'crops were given'
            )
        self.spatial_affinity.check_pair(s_glob, hr_glob)
        p = self.backbone.patch_size
        grid = (s_glob.shape[-2] // p, s_glob.shape[-1] // p)
        return self.spatial_affinity(l_out, l_idx, grid, hr_glob, _pera_dense_patches)

    def _koleo(self, feats):
        """KoLeo per global crop (nG, B, D), summed or averaged over crops."""
        koleo = sum(self.koleo_loss(feats[j]) for j in range(feats.shape[0]))
        return koleo if self.koleo_crop_reduction == 'sum' else koleo / feats.shape[0]

    @torch.no_grad()
    def _collapse_stats(self, t_cls, target_entropy, target_batch_entropy):
        """Per-iteration collapse indicators on the teacher (logged, not optimised)."""
        cos = mean_pairwise_cosine(t_cls)
        centered = t_cls.float() - t_cls.float().mean(0, keepdim=True)
        # svdvals raises on NaN/inf, but a non-finite step must reach the optimizer
        # wrapper (which skips it): such features give erank = NaN, without a sync.
        finite = torch.isfinite(centered).all()
        sv = torch.linalg.svdvals(torch.where(finite, centered, torch.zeros_like(centered)))
        p = sv / sv.sum().clamp_min(1e-12)
        erank = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        erank = torch.where(finite, erank, erank.new_tensor(float('nan')))
        return dict(
            monitor_cls_cosine=cos,
            monitor_cls_erank=erank,
            monitor_target_entropy=target_entropy,
            monitor_target_batch_entropy=target_batch_entropy,
        )
