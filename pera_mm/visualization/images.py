# Copyright (c) pera-mm contributors. All rights reserved.
"""Images in, model inputs out: listing, decoding, resizing and normalising for the tools."""

from pathlib import Path
from typing import List, Sequence, Tuple

import mmcv
import numpy as np
import torch
from mmengine.config import Config

from ..datasets.transforms.loading import decode_rgb
from ..evaluation.knn_protocol import IMAGE_SUFFIXES, list_classes
from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError


def list_images(sources: Sequence) -> List[Path]:
    """Image files of ``sources`` (files, or folders searched recursively), in order.

    Raises:
        PeraFileNotFoundError: a source does not exist.
        PeraDataError: a folder holds no image, or a file is not an image.
    """
    found = []
    for source in map(Path, sources):
        if source.is_dir():
            files = sorted(
                p for p in source.rglob('*') if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
            if not files:
                raise PeraDataError(f'{source}: no images ({", ".join(IMAGE_SUFFIXES)}) in it')
            found += files
        elif source.is_file():
            if source.suffix.lower() not in IMAGE_SUFFIXES:
                raise PeraDataError(f'{source}: not an image ({", ".join(IMAGE_SUFFIXES)})')
            found.append(source)
        else:
            raise PeraFileNotFoundError(f'{source}: no such image file or folder')
    return found


def labelled_images(root) -> Tuple[List[Tuple[Path, int]], List[str]]:
    """``(path, label)`` of every image of a folder-per-class tree, and the class names.

    Raises:
        PeraFileNotFoundError: ``root`` does not exist.
        PeraDataError: no class folder, or a class folder without images.
    """
    classes = list_classes(root)
    items = []
    for label, name in enumerate(classes):
        items += [(path, label) for path in list_images([Path(root) / name])]
    return items, classes


def normalisation(cfg: Config) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel (mean, std) of the config's data preprocessor (0-255 RGB)."""
    pre = (cfg.get('model') or {}).get('data_preprocessor') or cfg.get('data_preprocessor')
    if not pre or 'mean' not in pre or 'std' not in pre:
        raise PeraConfigError(f'{cfg.filename}: model.data_preprocessor needs mean and std')
    return torch.tensor(pre['mean'], dtype=torch.float32), torch.tensor(
        pre['std'], dtype=torch.float32
    )


def read_rgb(path) -> np.ndarray:
    """An image file fully decoded to RGB uint8 (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise PeraFileNotFoundError(f'{path}: no such image file')
    return decode_rgb(path.read_bytes(), str(path))


def resize_rgb(img: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, size, size) float in 0-255.

    OpenCV's area interpolation (``mmcv.imresize(..., interpolation='area')``), as in
    the evaluation pipeline of the kNN protocol, so features match its numbers.
    """
    resized = mmcv.imresize(np.ascontiguousarray(img), (size, size), interpolation='area')
    return torch.from_numpy(resized).permute(2, 0, 1).float()


def model_inputs(
    paths: Sequence, size: int, mean: torch.Tensor, std: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Normalised model inputs (N, 3, size, size) and the resized pixels they come from."""
    pixels = torch.stack([resize_rgb(read_rgb(p), size) for p in paths])
    return (pixels - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1), pixels


def to_display(chw: torch.Tensor) -> np.ndarray:
    """(3, H, W) float pixels -> (H, W, 3) uint8, clipped to 0-255."""
    return chw.permute(1, 2, 0).clamp(0, 255).round().to(torch.uint8).numpy()
