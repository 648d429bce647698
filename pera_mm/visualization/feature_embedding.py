# Copyright (c) pera-mm contributors. All rights reserved.
"""2-D embeddings of features for plotting: t-SNE (scikit-learn), UMAP when installed."""

import importlib.util

import numpy as np
import torch
import torch.nn.functional as F

from ..utils.errors import PeraConfigError

#: embedding methods; 'umap' needs the optional umap-learn package
METHODS = ('tsne', 'umap')


def check_method(method: str) -> None:
    """Fail early when ``method`` is unknown or its package is not installed."""
    if method not in METHODS:
        raise PeraConfigError(f'--method must be one of {METHODS}, got {method!r}')
    if method == 'umap' and importlib.util.find_spec('umap') is None:
        raise PeraConfigError(
            '--method umap needs the optional package umap-learn, which is not '
            'installed; use --method tsne'
        )


def embed_2d(feats: torch.Tensor, method: str = 'tsne', perplexity: float = 30.0, seed: int = 0):
    """(N, 2) embedding of the L2-normalised features (the geometry the kNN vote uses).

    t-SNE's perplexity is capped at ``(N - 1) / 3`` so that small sets work.
    """
    check_method(method)
    n = feats.shape[0]
    if n < 4:
        raise PeraConfigError(f'a 2-D embedding needs at least 4 images, got {n}')
    x = F.normalize(feats.double(), dim=1).numpy()
    if method == 'umap':
        import umap

        return np.asarray(umap.UMAP(n_components=2, random_state=seed).fit_transform(x))
    from sklearn.manifold import TSNE

    tsne = TSNE(
        n_components=2,
        perplexity=min(float(perplexity), (n - 1) / 3),
        init='pca',
        random_state=seed,
    )
    return tsne.fit_transform(x)
