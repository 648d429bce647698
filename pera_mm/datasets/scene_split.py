# Copyright (c) pera-mm contributors. All rights reserved.
"""Seeded, stratified train/test splits of a folder-per-class scene dataset.

Scene-classification benchmarks (AID, UC Merced, RSSCN7, NWPU-RESISC45) ship
as one folder per class and no official split; papers draw a random fraction
of every class for training (AID 20 %, UC Merced 80 % or 50 %). This module
turns such a folder into the annotation files MMPretrain's ``CustomDataset``
reads (one ``relative/path label`` line per image, paths relative to the
dataset folder) and a classes file (one class name per line, line ``i`` is
label ``i``).

Rules:

- classes are the sub-folders of the dataset folder, sorted by name (files at
  the top level, such as a README, are ignored); a class is every image below
  its folder, searched recursively;
- images are files whose extension is in :data:`SCENE_IMG_EXTENSIONS`
  (case-insensitive, ``.tif``/``.tiff`` included);
- per class, ``round(n * train_ratio)`` images (at least 1, at most ``n - 1``)
  go to the training split, chosen by a random permutation seeded with
  ``(seed, class name)``: the split of a class depends only on the seed, its
  name and its sorted list of files, not on the other classes;
- both files list their images sorted by (label, path).
"""

import os
import os.path as osp
import random
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: image file extensions a class folder may hold (matched case-insensitively)
SCENE_IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp', '.ppm', '.pgm', '.webp')


def find_class_images(
    root: str, extensions: Sequence[str] = SCENE_IMG_EXTENSIONS
) -> Tuple[List[str], Dict[str, List[str]]]:
    """The classes of a folder-per-class dataset and their image files.

    Args:
        root (str): the dataset folder (one sub-folder per class).
        extensions (Sequence[str]): image extensions (lower case, with the dot).

    Returns:
        tuple: the sorted class names and, for each class, its sorted image
        paths relative to ``root`` (``/``-separated).

    Raises:
        PeraFileNotFoundError: ``root`` is not a folder.
        PeraDataError: ``root`` has no class folder, or a class folder has no image.
    """
    if not osp.isdir(root):
        raise PeraFileNotFoundError(f'{root}: no such dataset folder')
    exts = tuple(e.lower() for e in extensions)
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith('.'))
    if not classes:
        raise PeraDataError(
            f'{root}: no class folder found (expected one sub-folder of images per class)'
        )
    images = {}
    for name in classes:
        found = []
        for dirpath, dirnames, filenames in os.walk(osp.join(root, name), followlinks=True):
            dirnames.sort()
            for fname in filenames:
                if fname.lower().endswith(exts) and not fname.startswith('.'):
                    found.append(osp.relpath(osp.join(dirpath, fname), root).replace(os.sep, '/'))
        if not found:
            raise PeraDataError(
                f'{osp.join(root, name)}: class folder holds no image (expected files ending '
                f'in {", ".join(exts)})'
            )
        images[name] = sorted(found)
    return classes, images


def check_images_readable(
    root: str, paths: Sequence[str], decode: Optional[Callable[[bytes, str], object]] = None
) -> None:
    """Fully decode every image; the first unreadable one is a one-line error.

    Args:
        root (str): the dataset folder.
        paths (Sequence[str]): image paths relative to ``root``.
        decode (callable, optional): ``decode(content, path)`` raising on a bad
            image; defaults to :func:`pera_mm.datasets.transforms.decode_rgb`,
            the decoder of the training pipeline's ``LoadRGBImageFromFile``.

    Raises:
        PeraDataError: naming the file and why it cannot be read.
    """
    if decode is None:
        from .transforms.loading import decode_rgb as decode
    for rel in paths:
        path = osp.join(root, rel)
        try:
            with open(path, 'rb') as f:
                content = f.read()
            decode(content, path)
        except Exception as err:  # the decoder names the file; keep only the reason
            reason = getattr(err, 'reason', None) or f'{type(err).__name__}: {err}'
            raise PeraDataError(f'{path}: unreadable image ({reason})') from err


def stratified_split(
    images: Dict[str, List[str]], classes: Sequence[str], train_ratio: float, seed: int = 0
) -> Tuple[List[Tuple[str, int]], List[Tuple[str, int]]]:
    """Split every class into training and test images.

    Args:
        images (dict): class name -> its image paths (as from :func:`find_class_images`).
        classes (Sequence[str]): class names; the label of a class is its index.
        train_ratio (float): fraction of each class for training, in (0, 1).
        seed (int): random seed. Defaults to 0.

    Returns:
        tuple: the training and the test samples, each a list of
        ``(path, label)`` sorted by (label, path).

    Raises:
        PeraConfigError: ``train_ratio`` is not in (0, 1).
        PeraDataError: a class has fewer than 2 images (it cannot be in both splits).
    """
    if isinstance(train_ratio, bool) or not isinstance(train_ratio, (int, float)):
        raise PeraConfigError(f'train_ratio must be a number in (0, 1), got {train_ratio!r}')
    if not 0 < train_ratio < 1:
        raise PeraConfigError(f'train_ratio must be in (0, 1), got {train_ratio!r}')
    train, test = [], []
    for label, name in enumerate(classes):
        files = sorted(images[name])
        n = len(files)
        if n < 2:
            raise PeraDataError(
                f'class {name!r} has {n} image(s); a train/test split needs at least 2 per class'
            )
        n_train = min(max(int(n * train_ratio + 0.5), 1), n - 1)
        order = list(range(n))
        random.Random(f'{seed}:{name}').shuffle(order)
        chosen = set(order[:n_train])
        for i, path in enumerate(files):
            (train if i in chosen else test).append((path, label))
    return train, test


def split_file_names(train_ratio: float, seed: int) -> Tuple[str, str]:
    """Names of the annotation files of one split, e.g. ``split-20-80_seed0_train.txt``."""
    pct = round(train_ratio * 100, 2)
    pct_train = f'{pct:g}'
    pct_test = f'{round(100 - pct, 2):g}'
    stem = f'split-{pct_train}-{pct_test}_seed{seed}'
    return f'{stem}_train.txt', f'{stem}_test.txt'


def write_lines(path: str, lines: Sequence[str]) -> None:
    """Write ``lines`` to ``path``, one per line (the folder is created)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(f'{line}\n' for line in lines)


def split_scene_dataset(
    root: str,
    out_dir: str,
    train_ratio: float,
    seed: int = 0,
    check_images: bool = True,
    classes_file: str = 'classes.txt',
) -> dict:
    """Write the classes file and the train/test annotation files of one split.

    Args:
        root (str): the dataset folder (one sub-folder per class).
        out_dir (str): where to write the files.
        train_ratio (float): fraction of each class for training, in (0, 1).
        seed (int): random seed. Defaults to 0.
        check_images (bool): decode every image first (an unreadable one is an
            error naming it). Defaults to True.
        classes_file (str): file name of the class list. Defaults to 'classes.txt'.

    Returns:
        dict: ``classes``, ``train``/``test`` (lists of ``(path, label)``),
        ``counts`` (class -> (n_train, n_test)) and the written ``files``
        (``classes``, ``train``, ``test`` -> path).
    """
    classes, images = find_class_images(root)
    train, test = stratified_split(images, classes, train_ratio, seed)
    if check_images:
        check_images_readable(root, [p for name in classes for p in images[name]])
    train_name, test_name = split_file_names(train_ratio, seed)
    files = dict(
        classes=osp.join(out_dir, classes_file),
        train=osp.join(out_dir, train_name),
        test=osp.join(out_dir, test_name),
    )
    classes_path = files['classes']
    if osp.isfile(classes_path):
        with open(classes_path, encoding='utf-8') as f:
            old = [line.strip() for line in f if line.strip()]
        if old != list(classes):
            raise PeraDataError(
                f'{classes_path}: holds {len(old)} other class names than the {len(classes)} '
                f'folders of {root}; remove it or use another --out-dir'
            )
    write_lines(classes_path, classes)
    write_lines(files['train'], [f'{p} {label}' for p, label in train])
    write_lines(files['test'], [f'{p} {label}' for p, label in test])
    counts = {name: [0, 0] for name in classes}
    for part, samples in ((0, train), (1, test)):
        for _, label in samples:
            counts[classes[label]][part] += 1
    return dict(
        classes=list(classes),
        train=train,
        test=test,
        counts={k: tuple(v) for k, v in counts.items()},
        files=files,
    )
