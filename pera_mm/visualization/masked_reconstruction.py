# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA's pixel prediction on one disjoint mask: masked input, prediction and target.

The student sees the s patches, gets mask tokens at the l patches from mid-depth and
its pixel head predicts their pixels in the normalised (p, p, C) patch layout of
:func:`pera_mm.structures.patchify`; the t patches are the teacher's only. Panels
are returned in 0-255 pixel units (unclipped, so they can be compared exactly).
"""

from typing import Dict, Sequence

import torch
from mmengine.config import Config

from ..datasets.transforms.disjoint_mask_generator import disjoint_counts
from ..models.selfsup.pera import flag_index_sets
from ..structures import MASK_L, MASK_S, MASK_T, patchify, unpatchify
from ..utils.errors import PeraConfigError

#: grey of the patches a panel does not show (0-255)
HIDDEN_FILL = 128.0


def configured_mask_ratios(cfg: Config) -> tuple:
    """The (s, l, t) ratios of the config's disjoint ``DisjointMaskGenerator``."""
    pipeline = ((cfg.get('train_dataloader') or {}).get('dataset') or {}).get('pipeline') or []
    for t in pipeline:
        if t.get('type') == 'DisjointMaskGenerator' and t.get('mode', 'disjoint') == 'disjoint':
            return tuple(float(r) for r in t.get('mask_ratios', (0.2, 0.2, 0.6)))
    raise PeraConfigError(
        f'{cfg.filename}: train_dataloader.dataset.pipeline has no disjoint '
        f'DisjointMaskGenerator; give --mask-ratios s,l,t'
    )


def mask_counts(num_patches: int, ratios: Sequence[float]) -> tuple:
    """Sizes (n_s, n_l, n_t) of the pipeline's disjoint sets; each must be > 0 here."""
    n_s, n_l, n_t = disjoint_counts(num_patches, ratios)
    if min(n_s, n_l, n_t) <= 0:
        raise PeraConfigError(
            f'mask ratios {tuple(ratios)} leave an empty set on {num_patches} patches '
            f'(n_s={n_s}, n_l={n_l}, n_t={n_t}); s, l and t must all be > 0'
        )
    return n_s, n_l, n_t


def draw_disjoint_mask(num_patches: int, ratios: Sequence[float], generator) -> torch.Tensor:
    """One random disjoint s / l / t flag map (num_patches,) with the sizes of the pipeline."""
    n_s, n_l, _ = mask_counts(num_patches, ratios)
    flags = torch.full((num_patches,), MASK_T, dtype=torch.uint8)
    perm = torch.randperm(num_patches, generator=generator)
    flags[perm[:n_s]] = MASK_S
    flags[perm[n_s : n_s + n_l]] = MASK_L
    return flags


def denormalise_patches(patches: torch.Tensor, mean, std) -> torch.Tensor:
    """(..., p*p*C) normalised patches in (p, p, C) order -> 0-255 pixels."""
    C = mean.numel()
    shape = patches.shape
    return (patches.reshape(*shape[:-1], -1, C) * std + mean).reshape(shape)


@torch.no_grad()
def reconstruct(model, img: torch.Tensor, flags: torch.Tensor, mean, std) -> Dict:
    """Masked input / prediction / target of one normalised image (1, C, H, W).

    Args:
        model (PerA): with ``predictor`` (eval mode).
        img (Tensor): (1, C, H, W), normalised with ``mean`` / ``std``.
        flags (Tensor): (L,) flag map (s, l, t).
        mean, std (Tensor): (C,) normalisation of ``img``.

    Returns:
        dict: ``masked``, ``prediction``, ``target`` (C, H, W) 0-255 panels;
        ``predicted_patches`` (n_l, p*p*C) de-normalised pixel-head output and
        ``l_idx`` (n_l,) its patch indices; ``mse`` the patch-summed squared error
        of the l patches in normalised units (the pixel loss without its weight).
    """
    vit = model.backbone
    p, C = vit.patch_size, img.shape[1]
    grid = (img.shape[-2] // p, img.shape[-1] // p)
    idx = flag_index_sets(flags[None], 'mask', s=MASK_S, l=MASK_L)
    _, l_out = vit(img, path='student', s_idx=idx['s'], l_idx=idx['l'], mask_token=model.mask_token)
    pred = model.predictor(l_out)[0]
    patches = patchify(img, p)[0]
    target = patches[idx['l'][0]]
    if getattr(model.pixel_loss, 'norm_pix', False):  # predictions of per-patch normalised targets
        mu, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        mse_target = (target - mu) / (var + 1e-6).sqrt()
        mse = ((pred - mse_target) ** 2).sum(-1).mean()
        pred = pred * (var + 1e-6).sqrt() + mu
    else:
        mse = ((pred - target) ** 2).sum(-1).mean()
    pixels = denormalise_patches(patches, mean, std)
    predicted = denormalise_patches(pred, mean, std)
    s_rows = flags == MASK_S
    masked = torch.full_like(pixels, HIDDEN_FILL)
    masked[s_rows] = pixels[s_rows]
    prediction = masked.clone()
    prediction[idx['l'][0]] = predicted

    def panel(x):
        return unpatchify(x[None], p, grid, C)[0]

    return dict(
        masked=panel(masked),
        prediction=panel(prediction),
        target=panel(pixels),
        predicted_patches=predicted,
        l_idx=idx['l'][0],
        mse=float(mse),
    )
