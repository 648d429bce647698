# Copyright (c) pera-mm contributors. All rights reserved.
"""Convert the official LoveDA archives to MMSeg's ``LoveDADataset`` layout.

``Train.zip`` / ``Val.zip`` / ``Test.zip`` (or the folders ``Train/``, ``Val/``,
``Test/`` they extract to) hold ``<Split>/{Rural,Urban}/images_png/<id>.png`` and,
for train and val, ``masks_png/<id>.png``. The ids are unique across the two
domains, so both go into one folder per split; the PNG bytes are copied as they
are (masks keep LoveDA's raw codes, 0 = no-data, ignored by ``reduce_zero_label``)::

    out_dir/img_dir/{train,val,test}/<id>.png
    out_dir/ann_dir/{train,val}/<id>.png
"""

import os
from pathlib import Path
from typing import Callable, Dict

from ...utils.errors import PeraDataError, PeraFileNotFoundError
from .archive_source import ArchiveSource, image_size

#: split -> official archive name (without ``.zip``)
LOVEDA_ARCHIVES = dict(train='Train', val='Val', test='Test')


def _members(source: ArchiveSource, kind: str) -> Dict[str, str]:
    """``<id>.png`` -> member, over both domains (an id in both is an error)."""
    found: Dict[str, str] = {}
    for domain in ('Rural', 'Urban'):
        pattern = rf'(?:^|/){domain}/{kind}/(?P<name>[^/]+\.png)$'
        for name, member in source.match(pattern, 'name').items():
            if name in found:
                raise PeraDataError(
                    f'{source.path}: {found[name]} and {member} would both be {name}'
                )
            found[name] = member
    return found


def convert_loveda(download_dir, out_dir, log: Callable[[str], None] = print) -> Dict[str, int]:
    """Copy LoveDA's images and masks from the official archives into ``out_dir``.

    ``Train`` and ``Val`` are required, ``Test`` is optional (skipped with a line).
    Every train/val image needs a mask of the same size (read from the PNG headers).

    Args:
        download_dir (str | Path): the folder with the archives.
        out_dir (str | Path): the dataset root to write (``data_root`` of the config).
        log (callable): receives the progress lines.

    Returns:
        dict[str, int]: the number of images written per split.

    Raises:
        PeraFileNotFoundError: ``Train`` or ``Val`` is missing.
        PeraDataError: an archive is unreadable or has no images, an image has no
            mask (or a mask no image), or a mask's size differs from its image.
    """
    counts = {}
    for split, stem in LOVEDA_ARCHIVES.items():
        try:
            source = ArchiveSource.locate(download_dir, stem)
        except PeraFileNotFoundError:
            if split != 'test':
                raise
            log(f'loveda: no {stem}.zip in {download_dir}: the test split is skipped')
            continue
        images = _members(source, 'images_png')
        if not images:
            raise PeraDataError(
                f'{source.path}: no {stem}/{{Rural,Urban}}/images_png/*.png member found'
            )
        masks = _members(source, 'masks_png') if split != 'test' else {}
        if split != 'test':
            for lonely, other, kind in ((images, masks, 'mask'), (masks, images, 'image')):
                extra = sorted(set(lonely) - set(other))
                if extra:
                    raise PeraDataError(
                        f'{source.where(lonely[extra[0]])}: has no {kind} '
                        f'({len(extra)} such file(s) in {source.path})'
                    )
        img_dir = Path(out_dir, 'img_dir', split)
        os.makedirs(img_dir, exist_ok=True)
        if masks:
            ann_dir = Path(out_dir, 'ann_dir', split)
            os.makedirs(ann_dir, exist_ok=True)
        for name in sorted(images):
            data = source.read(images[name])
            where = source.where(images[name])
            size = image_size(data, where)
            if masks:
                mask = source.read(masks[name])
                mask_where = source.where(masks[name])
                mask_size = image_size(mask, mask_where)
                if mask_size != size:
                    raise PeraDataError(
                        f'{mask_where} is {mask_size[1]}x{mask_size[0]} (HxW) but its image '
                        f'{where} is {size[1]}x{size[0]}'
                    )
                (ann_dir / name).write_bytes(mask)
            (img_dir / name).write_bytes(data)
        counts[split] = len(images)
        log(f'loveda: {split}: {len(images)} images' + (' with masks' if masks else ''))
    log(f'loveda: wrote {counts} to {out_dir}')
    return counts
