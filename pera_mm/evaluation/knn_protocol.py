# Copyright (c) pera-mm contributors. All rights reserved.
"""The fixed representation-quality protocol: a bank/query split and weighted kNN top-1.

Every method is scored the same way (docs/representation_quality.md): images
1-5 of each class are the bank, 6-10 the queries (adjacent file numbers often
share a scene, so leave-one-out would flatter every feature), and each query
is classified by a cosine, temperature-weighted vote of its ``k`` nearest
bank images (k = 20 and k = 1, T = 0.07).
"""

import re
from pathlib import Path
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: File suffixes read as images by :func:`split_bank_query`.
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp')

_TRAILING_NUMBER = re.compile(r'(\d+)$')

Sample = Tuple[str, int]


def list_classes(root) -> List[str]:
    """Class folder names under ``root``, sorted; label ``i`` is the ``i``-th name."""
    root = Path(root)
    if not root.is_dir():
        raise PeraFileNotFoundError(f'evaluation set {root}: folder does not exist')
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))
    if not classes:
        raise PeraDataError(f'evaluation set {root}: empty, expected one sub-folder per class')
    return classes


def _numbered_images(class_dir: Path) -> dict:
    """Image files of one class folder keyed by the trailing number of their stem."""
    numbered = {}
    for path in sorted(class_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        match = _TRAILING_NUMBER.search(path.stem)
        if match is None:
            continue
        number = int(match.group(1))
        if number in numbered:
            raise PeraDataError(
                f'evaluation set class folder {class_dir}: {numbered[number].name} and '
                f'{path.name} both carry image number {number}'
            )
        numbered[number] = path
    return numbered


def _check_range(name: str, bounds: Sequence[int]) -> range:
    if len(bounds) != 2 or int(bounds[0]) < 0 or int(bounds[1]) < int(bounds[0]):
        raise PeraConfigError(
            f'split_bank_query: {name} must be (first, last) image numbers, got {bounds}'
        )
    return range(int(bounds[0]), int(bounds[1]) + 1)


def split_bank_query(root, bank=(1, 5), query=(6, 10)) -> Tuple[List[Sample], List[Sample]]:
    """Split a folder-per-class tree into bank and query samples by image number.

    The image number is the trailing number of the file name (``airport_7.jpg``
    -> 7, ``a007.jpg`` -> 7); files numbered outside both ranges are left out.

    Args:
        root: folder holding one sub-folder per class (labels follow sorted names).
        bank: inclusive ``(first, last)`` image numbers of the bank.
        query: inclusive ``(first, last)`` image numbers of the queries.

    Returns:
        tuple: ``(bank, query)``, each a list of ``(path, label)`` in class, then number, order.

    Raises:
        PeraFileNotFoundError: ``root`` does not exist.
        PeraDataError: the set is empty, or a class folder lacks an image number the split needs.
    """
    bank_numbers, query_numbers = _check_range('bank', bank), _check_range('query', query)
    if set(bank_numbers) & set(query_numbers):
        raise PeraConfigError(
            f'split_bank_query: bank {tuple(bank)} and query {tuple(query)} overlap'
        )
    root = Path(root)
    bank_samples, query_samples = [], []
    for label, name in enumerate(list_classes(root)):
        class_dir = root / name
        numbered = _numbered_images(class_dir)
        missing = [n for n in (*bank_numbers, *query_numbers) if n not in numbered]
        if missing:
            have = len([n for n in (*bank_numbers, *query_numbers) if n in numbered])
            raise PeraDataError(
                f'evaluation set class folder {class_dir}: has {have} of the '
                f'{len(bank_numbers) + len(query_numbers)} images the split needs '
                f'(bank {bank[0]}-{bank[1]}, query {query[0]}-{query[1]}); '
                f'missing image numbers {missing}'
            )
        bank_samples += [(str(numbered[n]), label) for n in bank_numbers]
        query_samples += [(str(numbered[n]), label) for n in query_numbers]
    return bank_samples, query_samples


def _as_tensor(x, name: str, dtype) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.numel() == 0:
        raise PeraDataError(f'weighted_knn_top1: {name} is empty')
    return t.to(dtype)


def weighted_knn_top1(
    bank_feats, bank_labels, query_feats, query_labels, k: int = 20, temperature: float = 0.07
) -> float:
    """Top-1 accuracy (percent) of a cosine, temperature-weighted kNN vote.

    Each query takes its ``k`` most cosine-similar bank features, weights each by
    ``exp(sim / temperature)`` and sums the weights per class; the class with the
    largest sum wins. Tie rules (both deterministic): neighbours of equal
    similarity at the ``k``-th place are taken in bank order (lower index first),
    and an exact tie of class sums goes to the lower class label.

    Args:
        bank_feats, query_feats: ``(N, C)`` and ``(M, C)`` features (tensor or array).
        bank_labels, query_labels: ``(N,)`` and ``(M,)`` integer labels.
        k: neighbours per query, ``1 <= k <= N``.
        temperature: softness of the vote weights, ``> 0``.

    Returns:
        float: percentage of queries whose vote equals their label, in ``[0, 100]``.
    """
    bank = _as_tensor(bank_feats, 'bank_feats', torch.float64)
    query = _as_tensor(query_feats, 'query_feats', torch.float64)
    bank_y = _as_tensor(bank_labels, 'bank_labels', torch.long).flatten()
    query_y = _as_tensor(query_labels, 'query_labels', torch.long).flatten()
    if bank.ndim != 2 or query.ndim != 2 or bank.shape[1] != query.shape[1]:
        raise PeraDataError(
            f'weighted_knn_top1: features must be (N, C) and (M, C), got '
            f'{tuple(bank.shape)} and {tuple(query.shape)}'
        )
    if bank.shape[0] != bank_y.numel() or query.shape[0] != query_y.numel():
        raise PeraDataError(
            f'weighted_knn_top1: {bank.shape[0]} bank features / {bank_y.numel()} labels, '
            f'{query.shape[0]} query features / {query_y.numel()} labels'
        )
    if not 1 <= int(k) <= bank.shape[0]:
        raise PeraConfigError(
            f'weighted_knn_top1: k={k} but the bank holds {bank.shape[0]} features '
            f'(need 1 <= k <= {bank.shape[0]})'
        )
    if not temperature > 0:
        raise PeraConfigError(f'weighted_knn_top1: temperature must be > 0, got {temperature}')
    sim = F.normalize(query, dim=1) @ F.normalize(bank, dim=1).t()
    order = torch.sort(sim, dim=1, descending=True, stable=True).indices[:, : int(k)]
    weights = torch.exp(sim.gather(1, order) / temperature)
    num_classes = int(max(bank_y.max(), query_y.max())) + 1
    votes = torch.zeros(query.shape[0], num_classes, dtype=torch.float64)
    votes.scatter_add_(1, bank_y[order], weights)
    # torch.argmax returns the first maximal index: exact ties go to the lower label
    pred = votes.argmax(dim=1)
    return (pred == query_y).double().mean().item() * 100.0
