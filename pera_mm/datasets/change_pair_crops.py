# Copyright (c) pera-mm contributors. All rights reserved.
"""Cut change-detection pairs of any size into square crops with a true stride."""

import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.errors import PeraDataError, PeraFileNotFoundError
from .converters.sliding_window import sliding_window_boxes
from .transforms.bitemporal_loading import read_change_label, read_raster

#: Image suffixes looked for in the date A folder.
PAIR_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')

Triple = Tuple[str, str, str, str]  # (name, date A, date B, label)


def find_pairs(
    src: str, a_dir: str = 'A', b_dir: str = 'B', label_dir: str = 'label'
) -> List[Triple]:
    """The ``(stem, A, B, label)`` files of a folder with ``A/``, ``B/`` and ``label/``.

    B and the label are matched by stem (any suffix of :data:`PAIR_SUFFIXES`); a missing
    one is a :class:`PeraFileNotFoundError` naming it.
    """
    folders = [osp.join(src, d) for d in (a_dir, b_dir, label_dir)]
    for folder in folders:
        if not osp.isdir(folder):
            raise PeraFileNotFoundError(f'folder not found: {folder}')

    def by_stem(folder):
        return {
            osp.splitext(f)[0]: osp.join(folder, f)
            for f in os.listdir(folder)
            if f.lower().endswith(PAIR_SUFFIXES)
        }

    files_a, files_b, files_label = (by_stem(f) for f in folders)
    triples = []
    for stem in sorted(files_a):
        for files, folder in ((files_b, folders[1]), (files_label, folders[2])):
            if stem not in files:
                raise PeraFileNotFoundError(
                    f'no file for {files_a[stem]} in {folder} (expected {stem}.<png|jpg|bmp|tif>)'
                )
        triples.append((stem, files_a[stem], files_b[stem], files_label[stem]))
    if not triples:
        raise PeraDataError(f'no image in {folders[0]} (suffixes {", ".join(PAIR_SUFFIXES)})')
    return triples


def crop_pair(
    name: str,
    path_a: str,
    path_b: str,
    path_label: str,
    out_dir: str,
    crop_size: int,
    stride: int,
    changed_value: int = 255,
) -> List[str]:
    """Cut one pair and its label into ``crop_size`` crops every ``stride`` pixels.

    Crops start at 0, stride, 2 * stride, ... on each axis; the last one of each row and
    column is moved back to end at the border (see :func:`sliding_window_boxes`), so
    every pixel is covered, no crop is padded, and neighbours overlap by
    ``crop_size - stride`` pixels (more at the last one). Crops are written as PNG to
    ``out_dir/{A,B,label}/{name}_{y0:04d}_{x0:04d}.png`` (y0, x0: the crop's top-left
    pixel); the label as 0/255.

    Returns:
        list[str]: the crop names (without suffix), row by row.

    Raises:
        PeraDataError: the dates differ in size, the label is not the pair's size or has
            values other than 0 / ``changed_value``, or the image is smaller than a crop
            (each naming the files).
    """
    img_a, img_b = read_raster(path_a), read_raster(path_b)
    if img_a.shape != img_b.shape:
        raise PeraDataError(
            f'the pair {path_a} / {path_b} has sizes (H, W, C) {img_a.shape} and {img_b.shape}; '
            'both dates must have the same size'
        )
    label = read_change_label(path_label, changed_value)
    if label.shape != img_a.shape[:2]:
        raise PeraDataError(
            f'label {path_label} is {label.shape[0]}x{label.shape[1]} (HxW) but the pair '
            f'{path_a} / {path_b} is {img_a.shape[0]}x{img_a.shape[1]}'
        )
    height, width = label.shape
    try:
        boxes = sliding_window_boxes(height, width, crop_size, stride)
    except PeraDataError as err:
        raise PeraDataError(f'{path_a} ({height}x{width}): {err}') from None
    for sub in ('A', 'B', 'label'):
        os.makedirs(osp.join(out_dir, sub), exist_ok=True)
    names = []
    for x0, y0, x1, y1 in boxes:
        crop_name = f'{name}_{y0:04d}_{x0:04d}'
        for sub, array in (('A', img_a), ('B', img_b)):
            Image.fromarray(np.ascontiguousarray(array[y0:y1, x0:x1])).save(
                osp.join(out_dir, sub, crop_name + '.png')
            )
        Image.fromarray((label[y0:y1, x0:x1] * 255).astype(np.uint8)).save(
            osp.join(out_dir, 'label', crop_name + '.png')
        )
        names.append(crop_name)
    return names


def crop_pairs(
    triples: Iterable[Triple],
    out_dir: str,
    crop_size: int,
    stride: int,
    list_name: Optional[str] = None,
    changed_value: int = 255,
) -> List[str]:
    """Cut every ``(name, A, B, label)`` pair; list the crops in ``out_dir/list/<list_name>.txt``.

    Returns:
        list[str]: every crop name, in the order written to the list.
    """
    names: List[str] = []
    for name, path_a, path_b, path_label in triples:
        names += crop_pair(
            name, path_a, path_b, path_label, out_dir, crop_size, stride, changed_value
        )
    if list_name:
        os.makedirs(osp.join(out_dir, 'list'), exist_ok=True)
        with open(osp.join(out_dir, 'list', f'{list_name}.txt'), 'w') as f:
            f.writelines(f'{n}.png\n' for n in names)
    return names


def pair_triples(pairs: Sequence[Sequence[str]]) -> List[Triple]:
    """``(stem of A, A, B, label)`` for explicitly given ``[A, B, label]`` file triples."""
    triples = []
    for pair in pairs:
        path_a, path_b, path_label = pair
        for path in pair:
            if not osp.isfile(path):
                raise PeraFileNotFoundError(f'file not found: {path}')
        parent = osp.basename(osp.dirname(osp.abspath(path_a)))
        stem = osp.splitext(osp.basename(path_a))[0]
        triples.append((f'{parent}_{stem}' if parent else stem, path_a, path_b, path_label))
    return triples
