import copy
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.registry import MODELS

from ...datasets.transforms.disjoint_mask_generator import MASK_L, MASK_S, MASK_T
from ..backbones.pera_vit import gather_tokens
from ..losses import patchify


def flag_indices(masks, flag, field):
    """Ascending patch indices per row where ``flag`` is set: (N, L) -> (N, K).

    Rows must hold the same number of such patches (true for PerA's disjoint
    masks: counts come from the ratios alone).
    """
    hit = (masks & flag) != 0
    counts = hit.sum(1)
    if counts.numel() and bool((counts != counts[0]).any()):
        raise ValueError(f'{field}: rows select different numbers of patches '
                         f'({sorted(set(counts.tolist()))}); sparse paths need equal counts')
    return hit.nonzero()[:, 1].view(masks.shape[0], -1)


@torch.no_grad()
def target_entropies(targets):
    """Mean per-row entropy of teacher targets (..., K) and the entropy of their mean."""
    q = targets.reshape(-1, targets.shape[-1])
    entropy = -(q * torch.log(q.clamp_min(1e-12))).sum(-1).mean()
    mean_q = q.mean(0)
    return entropy, -(mean_q * torch.log(mean_q.clamp_min(1e-12))).sum()


@MODELS.register_module()
class PerA(BaseSelfSupervisor):
    """PerA: self-distillation between spatially aligned views that see disjoint patches.

    A student (``backbone`` + ``projector`` + ``predictor``) and an EMA teacher
    (``teacher.backbone`` + ``teacher.projector``) look at the same crops. The
    student sees the s patches and predicts the pixels of the l patches through
    mask tokens; the teacher sees only the t patches. Losses: DINO on the cls
    outputs of crop k vs crop k, pixel reconstruction at l, KoLeo.

    Inputs (from ``PerAMultiCropViews`` + ``DisjointMaskGenerator``): a list of
    view batches ``[student globals, teacher globals, student locals, teacher
    locals]`` and per-sample ``global_masks`` / ``local_masks`` flag maps.

    Args:
        backbone (dict): student ``PerAViT``; the teacher is built from the same
            config with ``drop_path_rate=0`` and starts as an exact copy.
        projector (dict): DINO head (student and teacher).
        cls_loss (dict): ``DINOClsLoss`` (holds the centre).
        predictor (dict, optional): ``PixelPredictionHead``; None disables pixel
            prediction (ablation).
        pixel_loss (dict, optional): ``PixelMSELoss``.
        koleo_loss (dict, optional): ``KoLeoLoss``.
        patch_loss (dict, optional): a ``DINOClsLoss`` for iBOT-style patch
            distillation (DINOv2 baseline: block masks, teacher on the full view).
        koleo_on (str): 'head' (released code: student global head outputs) or
            'backbone' (DINOv2: student global cls tokens).
        koleo_crop_reduction (str): 'sum' (released code) or 'mean' over global crops.
        pixel_target (str): 'student' (released code: the student's colour-augmented
            view) or 'teacher' (the teacher view; with teacher colour jitter off
            this is the un-augmented crop, the paper's figure).
        teacher_local_crops (bool): run the teacher on local crops too (PerA's
            crop-k-vs-crop-k pairing); False for DINO-style cross pairing.
        monitor (bool): log collapse statistics every iteration.
    """

    def __init__(self,
                 backbone: dict,
                 projector: dict,
                 cls_loss: dict,
                 predictor: Optional[dict] = None,
                 pixel_loss: Optional[dict] = None,
                 koleo_loss: Optional[dict] = None,
                 patch_loss: Optional[dict] = None,
                 koleo_on: str = 'head',
                 koleo_crop_reduction: str = 'sum',
                 pixel_target: str = 'student',
                 teacher_local_crops: bool = True,
                 monitor: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        checks = dict(koleo_on=(koleo_on, ('head', 'backbone')),
                      koleo_crop_reduction=(koleo_crop_reduction, ('sum', 'mean')),
                      pixel_target=(pixel_target, ('student', 'teacher')))
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f'PerA: {name} must be one of {allowed}, got {value!r}')
        if (predictor is None) != (pixel_loss is None):
            raise ValueError('PerA: predictor and pixel_loss must be given together '
                             '(both None disables pixel prediction)')
        super().__init__(backbone=backbone, data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        self.projector = MODELS.build(projector)
        self.predictor = MODELS.build(predictor) if predictor else None
        self.cls_loss = MODELS.build(cls_loss)
        self.pixel_loss = MODELS.build(pixel_loss) if pixel_loss else None
        self.koleo_loss = MODELS.build(koleo_loss) if koleo_loss else None
        self.patch_loss = MODELS.build(patch_loss) if patch_loss else None
        self.koleo_on, self.koleo_crop_reduction = koleo_on, koleo_crop_reduction
        self.pixel_target, self.teacher_local_crops = pixel_target, teacher_local_crops
        self.monitor = monitor
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.backbone.embed_dims))

        teacher_backbone = copy.deepcopy(backbone)
        teacher_backbone['drop_path_rate'] = 0.
        self.teacher = nn.ModuleDict(
            dict(backbone=MODELS.build(teacher_backbone), projector=MODELS.build(projector)))
        self.teacher.requires_grad_(False)
        self.sync_teacher()

    # --------------------------------------------------------------- teacher
    def init_weights(self):
        super().init_weights()
        nn.init.normal_(self.mask_token, std=0.02)
        self.sync_teacher()

    @torch.no_grad()
    def sync_teacher(self):
        """Make the teacher an exact copy of the student's backbone and projector."""
        self.teacher.backbone.load_state_dict(self.backbone.state_dict())
        self.teacher.projector.load_state_dict(self.projector.state_dict())

    def ema_pairs(self):
        """(teacher, student) parameter lists that the EMA updates."""
        t = list(self.teacher.backbone.parameters()) + list(self.teacher.projector.parameters())
        s = list(self.backbone.parameters()) + list(self.projector.parameters())
        return t, s

    @torch.no_grad()
    def update_teacher(self, momentum: float):
        """teacher <- m * teacher + (1 - m) * student over backbone + projector."""
        t, s = self.ema_pairs()
        torch._foreach_mul_(t, momentum)
        torch._foreach_add_(t, s, alpha=1 - momentum)

    def extract_feat(self, inputs):
        """``mode='tensor'``: dense features of the teacher backbone (used downstream)."""
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        return self.teacher.backbone(inputs)

    # ------------------------------------------------------------------ loss
    def loss(self, inputs: List[torch.Tensor], data_samples: list) -> Dict[str, torch.Tensor]:
        gm = torch.stack([torch.as_tensor(ds.global_masks) for ds in data_samples])
        lm = torch.stack([torch.as_tensor(ds.local_masks) for ds in data_samples])
        B, nG, nL = gm.shape[0], gm.shape[1], lm.shape[1]
        if len(inputs) != 2 * (nG + nL):
            raise ValueError(f'PerA: expected {2 * (nG + nL)} views for {nG} global and {nL} '
                             f'local crops, got {len(inputs)}')
        device = inputs[0].device
        # crop-major: row j * B + b is crop j of sample b
        gm = gm.transpose(0, 1).reshape(nG * B, -1).to(device)
        lm = lm.transpose(0, 1).reshape(nL * B, -1).to(device)
        s_glob = torch.cat(inputs[:nG])
        t_glob = torch.cat(inputs[nG:2 * nG])
        s_loc = torch.cat(inputs[2 * nG:2 * nG + nL]) if nL else None
        t_loc = torch.cat(inputs[2 * nG + nL:]) if nL else None
        return self.loss_from_views(s_glob, t_glob, s_loc, t_loc, gm, lm, B)

    def loss_from_views(self, s_glob, t_glob, s_loc, t_loc, gmask, lmask, batch_size):
        """The PerA step on crop-major view batches and flag masks."""
        B = batch_size
        nG = s_glob.shape[0] // B
        nL = 0 if s_loc is None else s_loc.shape[0] // B
        losses = {}

        # ---------------- teacher: cls + t patches, no grad
        with torch.no_grad():
            t_keep = None if bool(((gmask & MASK_T) != 0).all()) else \
                flag_indices(gmask, MASK_T, 'global_masks')
            t_seq_g = self.teacher.backbone(t_glob, path='sparse', keep_idx=t_keep)
            t_cls = [t_seq_g[:, 0]]
            if nL and self.teacher_local_crops:
                t_cls.append(self.teacher.backbone(
                    t_loc, path='sparse',
                    keep_idx=flag_indices(lmask, MASK_T, 'local_masks'))[:, 0])

        # ---------------- student
        dense = bool(((gmask & (MASK_S | MASK_L)) != 0).all())
        if dense:
            l_mask = (gmask & MASK_L) != 0
            seq = self.backbone(s_glob, path='masked_dense', l_mask=l_mask,
                                mask_token=self.mask_token)
            s_cls_g = seq[:, 0]
        else:
            s_idx = flag_indices(gmask, MASK_S, 'global_masks')
            l_idx = flag_indices(gmask, MASK_L, 'global_masks')
            s_cls_g, l_out = self.backbone(s_glob, path='student', s_idx=s_idx,
                                          l_idx=l_idx, mask_token=self.mask_token)
        s_cls = [s_cls_g]
        if nL:
            s_cls.append(self.backbone(
                s_loc, path='sparse',
                keep_idx=flag_indices(lmask, MASK_S, 'local_masks'))[:, 0])

        # ---------------- DINO on the cls outputs (heads run once on all crops)
        dino, s_head_global, target_stats = self._dino_terms(
            torch.cat(s_cls), torch.cat(t_cls), nG, nL, B)
        losses.update(dino)

        # ---------------- KoLeo on student global features, per crop
        if self.koleo_loss is not None:
            feats = s_head_global if self.koleo_on == 'head' else s_cls_g.view(nG, B, -1)
            koleo = sum(self.koleo_loss(feats[j]) for j in range(nG))
            losses['loss_koleo'] = koleo if self.koleo_crop_reduction == 'sum' else koleo / nG

        # ---------------- pixel prediction at the l patches
        if self.predictor is not None and not dense:
            if l_idx.shape[1] == 0:
                raise ValueError('PerA: pixel prediction is on but the masks have no l patches '
                                 '(mask_ratios[1] == 0); set predictor=None, pixel_loss=None')
            src = s_glob if self.pixel_target == 'student' else t_glob
            target = gather_tokens(patchify(src, self.backbone.patch_size), l_idx)
            losses['loss_pixel'] = self.pixel_loss(self.predictor(l_out), target)

        # ---------------- iBOT patch distillation (DINOv2-style baseline)
        if self.patch_loss is not None:
            if not dense:
                raise ValueError('PerA: patch_loss (iBOT) needs full-grid student views '
                                 "(DisjointMaskGenerator mode='block')")
            losses['loss_patch'] = self._ibot_loss(seq, t_seq_g, l_mask)

        if self.monitor:
            losses.update(self._collapse_stats(t_seq_g[:, 0], *target_stats))
        return losses

    def _dino_terms(self, s_cls, t_cls, nG, nL, B):
        """DINO losses on cls outputs of all crops (crop-major rows).

        Returns the loss dict, the student head outputs of the global crops
        (nG, B, K) when KoLeo needs them (else None), and the teacher-target
        entropies for the collapse monitor. With ``cls_loss.chunk_size`` the
        (rows, K) logits are never built (see ``ChunkedPrototypeCrossEntropy``).
        """
        n_crops, loss_fn = nG + nL, self.cls_loss
        need_head_global = self.koleo_loss is not None and self.koleo_on == 'head'
        losses = {}
        if loss_fn.chunk_size:
            # The prototype matrices are used inside the heads' forwards (FSDP
            # gathers them there); the teacher's is copied because the backward
            # recomputes the targets after FSDP has resharded the teacher head.
            with torch.no_grad():
                t_z, t_w = self.teacher.projector(
                    t_cls, then=lambda z, w: (z, w.detach().float().clone()))
            if t_z.shape[0] != s_cls.shape[0]:
                raise ValueError('PerA: chunked DINO loss pairs crop k with crop k; the teacher '
                                 'must see the local crops too (teacher_local_crops=True)')

            def student_terms(s_z, s_w):
                rows = loss_fn.forward_chunked(s_z, s_w, t_z, t_w)
                head = (s_z[:nG * B] @ s_w.t()).view(nG, B, -1) if need_head_global else None
                return rows, head

            rows, s_head_global = self.projector(s_cls, then=student_terms)
            rows = rows.view(n_crops, B)
            losses['loss_cls_global'] = rows[:nG].mean() * nG / n_crops
            if nL:
                losses['loss_cls_local'] = rows[nG:].mean() * nL / n_crops
            stats = loss_fn.chunked_target_entropies(t_z[:nG * B], t_w) if self.monitor else ()
            return losses, s_head_global, stats

        with torch.no_grad():
            t_logits = self.teacher.projector(t_cls)
            targets = loss_fn.teacher_targets(t_logits).view(-1, B, t_logits.shape[-1])
        s_logits = self.projector(s_cls).view(n_crops, B, -1)
        if loss_fn.pairing == 'same':
            losses['loss_cls_global'] = loss_fn(s_logits[:nG], targets[:nG]) * nG / n_crops
            if nL:
                losses['loss_cls_local'] = loss_fn(s_logits[nG:], targets[nG:]) * nL / n_crops
        else:
            losses['loss_cls'] = loss_fn(s_logits, targets[:nG])
        stats = target_entropies(targets[:nG]) if self.monitor else ()
        return losses, s_logits[:nG], stats

    def _ibot_loss(self, s_seq, t_seq, l_mask):
        if t_seq.shape[1] != s_seq.shape[1]:
            raise ValueError('PerA: patch_loss needs the teacher to see every patch')
        rows = l_mask.nonzero(as_tuple=True)
        if rows[0].numel() == 0:
            return s_seq.sum() * 0.
        s_patch = self.projector(s_seq[:, 1:][rows])
        with torch.no_grad():
            t_patch = self.patch_loss.teacher_targets(self.teacher.projector(t_seq[:, 1:][rows]))
        return self.patch_loss(s_patch[None], t_patch[None])

    @torch.no_grad()
    def _collapse_stats(self, t_cls, target_entropy, target_batch_entropy):
        """Per-iteration collapse indicators on the teacher (logged, not optimised)."""
        f = F.normalize(t_cls.float(), dim=-1)
        n = f.shape[0]
        sim = f @ f.t()
        cos = (sim.sum() - sim.diagonal().sum()) / max(n * (n - 1), 1)
        centered = t_cls.float() - t_cls.float().mean(0, keepdim=True)
        sv = torch.linalg.svdvals(centered)
        p = sv / sv.sum().clamp_min(1e-12)
        erank = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
        return dict(monitor_cls_cosine=cos, monitor_cls_erank=erank,
                    monitor_target_entropy=target_entropy,
                    monitor_target_batch_entropy=target_batch_entropy)
