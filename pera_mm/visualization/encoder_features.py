# Copyright (c) pera-mm contributors. All rights reserved.
"""Encoder features of image files, and the statistics that compare two feature sets."""

from typing import Callable, Dict, Iterable, Sequence

import torch
import torch.nn.functional as F

from ..models.utils.feature_stats import mean_pairwise_cosine
from ..utils.errors import PeraConfigError
from .images import model_inputs

#: how a token sequence becomes one vector per image
POOLS = ('cls', 'mean')


def _no_progress(batches: Iterable, total: int) -> Iterable:
    return batches


@torch.no_grad()
def encoder_features(
    vit,
    paths: Sequence,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    pool: str = 'cls',
    batch_size: int = 32,
    progress: Callable = _no_progress,
) -> torch.Tensor:
    """Final-normed features (N, C) of ``vit`` on every image of ``paths``.

    Args:
        vit (PerAViT): the encoder (eval mode).
        paths (Sequence): image files.
        size (int): input side the images are resized to.
        mean, std (Tensor): per-channel normalisation (0-255 RGB).
        pool (str): 'cls' (the cls token, what the kNN protocol and the DINO head
            read) or 'mean' (mean of the patch tokens).
        batch_size (int): images per forward pass.
        progress (callable): ``progress(batches, total)`` wraps the batch loop
            (e.g. ``tqdm``).
    """
    if pool not in POOLS:
        raise PeraConfigError(f'--pool must be one of {POOLS}, got {pool!r}')
    starts = range(0, len(paths), batch_size)
    feats = []
    for start in progress(starts, len(starts)):
        x, _ = model_inputs(paths[start : start + batch_size], size, mean, std)
        tokens = vit.forward_sparse(x, None)
        feats.append(tokens[:, 0] if pool == 'cls' else tokens[:, 1:].mean(1))
    return torch.cat(feats)


def effective_rank(feats: torch.Tensor) -> float:
    """exp(entropy) of the normalised singular values of the centred features."""
    centred = feats.double() - feats.double().mean(0, keepdim=True)
    sv = torch.linalg.svdvals(centred)
    p = sv / sv.sum().clamp_min(1e-12)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


def pairwise_cosines(feats: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of every distinct pair of rows (N * (N - 1) / 2,)."""
    f = F.normalize(feats.double(), dim=1)
    rows, cols = torch.triu_indices(f.shape[0], f.shape[0], offset=1)
    return (f[rows] * f[cols]).sum(1)


def feature_statistics(feats: torch.Tensor) -> Dict[str, float]:
    """Summary statistics of a feature set (N, C).

    ``value_*`` over every entry; ``norm_mean`` the mean L2 norm of a feature;
    ``dim_std_mean`` the per-dimension std across images, averaged (near 0 =
    collapse to one vector); ``pairwise_cosine`` the mean cosine of distinct pairs;
    ``effective_rank`` as :func:`effective_rank`.
    """
    f = feats.double()
    return dict(
        images=int(f.shape[0]),
        dims=int(f.shape[1]),
        value_mean=float(f.mean()),
        value_std=float(f.std()),
        value_min=float(f.min()),
        value_max=float(f.max()),
        norm_mean=float(f.norm(dim=1).mean()),
        dim_std_mean=float(f.std(0).mean()),
        pairwise_cosine=float(mean_pairwise_cosine(f)),
        effective_rank=effective_rank(f),
    )
