# Copyright (c) pera-mm contributors. All rights reserved.
"""Convert ISPRS 2D labelling tiles (Potsdam, Vaihingen) to MMSeg's folder layout.

Training tiles are cut into square crops with a TRUE stride (every
``stride`` pixels, the last crop of a row or column moved back to end at
the tile's border); validation tiles are written whole, for slide
inference, or cropped like the training tiles on request. Output, as read
by MMSeg's ``PotsdamDataset`` / ``ISPRSDataset``::

    out_dir/img_dir/{train,val}/<tile>[_<x0>_<y0>_<x1>_<y1>].png   (image, as stored)
    out_dir/ann_dir/{train,val}/<same name>.png   (0 ignored, 1..6 classes)
"""

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

import numpy as np
from PIL import Image

from ...utils.errors import PeraConfigError, PeraDataError
from .archive_source import ArchiveSource
from .isprs_palette import isprs_colour_to_index
from .sliding_window import sliding_window_boxes


@dataclass(frozen=True)
class IsprsTileSet:
    """Where a dataset's tiles are and how they are split.

    Args:
        name (str): the dataset name used in messages.
        image_archive (str): image archive name without ``.zip``.
        image_pattern (str): regex of an image member, with the group ``tile``.
        label_archives (dict[str, str]): label variant -> label archive name.
        label_patterns (dict[str, str]): label variant -> regex with the group ``tile``.
        splits (dict[str, tuple[str, ...]]): ``train`` / ``val`` -> tile ids.
    """

    name: str
    image_archive: str
    image_pattern: str
    label_archives: Dict[str, str]
    label_patterns: Dict[str, str]
    splits: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


#: ISPRS Potsdam: 38 tiles of 6000x6000. The split is the official ISPRS one, which is
#: also MMSeg's (24 labelled training tiles, the 14 benchmark test tiles as ``val``) and
#: the paper's 24/14.
POTSDAM = IsprsTileSet(
    name='potsdam',
    image_archive='2_Ortho_RGB',
    image_pattern=r'(?:^|/)top_potsdam_(?P<tile>\d+_\d+)_RGB\.tif$',
    label_archives=dict(noBoundary='5_Labels_all_noBoundary', full='5_Labels_all'),
    label_patterns=dict(
        noBoundary=r'(?:^|/)top_potsdam_(?P<tile>\d+_\d+)_label_noBoundary\.tif$',
        full=r'(?:^|/)top_potsdam_(?P<tile>\d+_\d+)_label\.tif$',
    ),
    splits=dict(
        train=(
            '2_10', '2_11', '2_12', '3_10', '3_11', '3_12', '4_10', '4_11',
            '4_12', '5_10', '5_11', '5_12', '6_7', '6_8', '6_9', '6_10',
            '6_11', '6_12', '7_7', '7_8', '7_9', '7_10', '7_11', '7_12',
        ),
        val=(
            '2_13', '2_14', '3_13', '3_14', '4_13', '4_14', '4_15',
            '5_13', '5_14', '5_15', '6_13', '6_14', '6_15', '7_13',
        ),
    ),
)  # fmt: skip

#: ISPRS Vaihingen: 33 IRRG areas (about 2000x2500). Official split = MMSeg's: 16 labelled
#: training areas, the 17 benchmark test areas as ``val``. The image archive also holds the
#: participants' labels under the same file names, hence the ``top/`` folder in the pattern.
VAIHINGEN = IsprsTileSet(
    name='vaihingen',
    image_archive='ISPRS_semantic_labeling_Vaihingen',
    image_pattern=r'(?:^|/)top/top_mosaic_09cm_(?P<tile>area\d+)\.tif$',
    label_archives=dict(
        noBoundary='ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE',
        full='ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE',
    ),
    label_patterns=dict(
        noBoundary=r'(?:^|/)top_mosaic_09cm_(?P<tile>area\d+)_noBoundary\.tif$',
        full=r'(?:^|/)top_mosaic_09cm_(?P<tile>area\d+)\.tif$',
    ),
    splits=dict(
        train=tuple(
            f'area{i}' for i in (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26, 28, 30, 32, 34, 37)
        ),
        val=tuple(
            f'area{i}' for i in (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)
        ),
    ),
)

#: The label variant used when none is named: the eroded labels (boundary pixels black,
#: ignored in training and evaluation), as in MMSeg's data preparation and the ISPRS
#: benchmark's main figures.
DEFAULT_LABEL_VARIANT = 'noBoundary'

#: zlib level of the written PNGs: 1 saves a 512 RGB crop about 4x faster than Pillow's
#: default 6 for files about 8% larger (lossless either way).
PNG_COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class _TileJob:
    tile: str
    split: str
    images: ArchiveSource
    image_member: str
    labels: ArchiveSource
    label_member: str
    out_dir: str
    crop: Optional[int]  # None: write the tile whole
    stride: int


def _convert_tile(job: _TileJob) -> Tuple[str, str, int, dict]:
    """Read one tile and its label; write the crops (or the whole tile)."""
    image = job.images.read_image(job.image_member)
    where_image = job.images.where(job.image_member)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PeraDataError(
            f'{where_image}: expected an 8-bit 3-band image, got shape {image.shape} and '
            f'dtype {image.dtype}'
        )
    colour = job.labels.read_image(job.label_member)
    where_label = job.labels.where(job.label_member)
    if colour.ndim == 3 and colour.shape[2] == 4:
        colour = colour[..., :3]
    label, stats = isprs_colour_to_index(colour, where_label)
    if label.shape != image.shape[:2]:
        raise PeraDataError(
            f'{where_label} is {label.shape[0]}x{label.shape[1]} (HxW) but its image '
            f'{where_image} is {image.shape[0]}x{image.shape[1]}'
        )
    img_dir = Path(job.out_dir, 'img_dir', job.split)
    ann_dir = Path(job.out_dir, 'ann_dir', job.split)
    if job.crop is None:
        Image.fromarray(image).save(img_dir / f'{job.tile}.png', compress_level=PNG_COMPRESS_LEVEL)
        Image.fromarray(label).save(ann_dir / f'{job.tile}.png', compress_level=PNG_COMPRESS_LEVEL)
        return job.tile, job.split, 1, stats
    try:
        boxes = sliding_window_boxes(*image.shape[:2], job.crop, job.stride)
    except PeraDataError as err:
        raise PeraDataError(f'{where_image}: {err}') from None
    for x0, y0, x1, y1 in boxes:
        name = f'{job.tile}_{x0}_{y0}_{x1}_{y1}.png'
        Image.fromarray(image[y0:y1, x0:x1]).save(img_dir / name, compress_level=PNG_COMPRESS_LEVEL)
        Image.fromarray(label[y0:y1, x0:x1]).save(ann_dir / name, compress_level=PNG_COMPRESS_LEVEL)
    return job.tile, job.split, len(boxes), stats


def convert_isprs(
    tile_set: IsprsTileSet,
    download_dir,
    out_dir,
    label_variant: str = DEFAULT_LABEL_VARIANT,
    crop_size: int = 512,
    stride: int = 256,
    val_mode: str = 'whole',
    nproc: int = 1,
    log: Callable[[str], None] = print,
) -> Dict[str, int]:
    """Convert the tiles of ``tile_set`` found in ``download_dir`` into ``out_dir``.

    Args:
        tile_set (IsprsTileSet): :data:`POTSDAM` or :data:`VAIHINGEN`.
        download_dir (str | Path): the folder with the official archives (zips, or the
            folders they were extracted to, named like the zips without ``.zip``).
        out_dir (str | Path): the dataset root to write (``data_root`` of the config).
        label_variant (str): ``'noBoundary'`` (eroded, default) or ``'full'``.
        crop_size (int): the crop side. Defaults to 512.
        stride (int): the step between crops (crop - overlap). Defaults to 256.
        val_mode (str): ``'whole'`` tiles (default, for slide inference) or ``'crops'``.
        nproc (int): worker processes, one tile each. Defaults to 1.
        log (callable): receives the progress and warning lines.

    Returns:
        dict[str, int]: the number of files written per split.

    Raises:
        PeraConfigError: an unknown label variant or val mode.
        PeraFileNotFoundError: an archive is missing.
        PeraDataError: no split tile was found, a tile has no label, an archive or
            image is unreadable, or a label's size differs from its image.
    """
    if label_variant not in tile_set.label_archives:
        raise PeraConfigError(
            f'label variant {label_variant!r}: expected one of {sorted(tile_set.label_archives)}'
        )
    if val_mode not in ('whole', 'crops'):
        raise PeraConfigError(f"val mode {val_mode!r}: expected 'whole' or 'crops'")
    sliding_window_boxes(crop_size, crop_size, crop_size, stride)  # checks crop and stride
    images = ArchiveSource.locate(download_dir, tile_set.image_archive)
    labels = ArchiveSource.locate(download_dir, tile_set.label_archives[label_variant])
    image_members = images.match(tile_set.image_pattern, 'tile')
    label_members = labels.match(tile_set.label_patterns[label_variant], 'tile')
    split_of = {tile: split for split, tiles in tile_set.splits.items() for tile in tiles}
    unknown = sorted(set(image_members) - set(split_of))
    if unknown:
        log(f'{tile_set.name}: skipping tiles in no split: {", ".join(unknown)}')
    missing = [t for t in split_of if t not in image_members]
    if missing:
        log(
            f'{tile_set.name}: warning: {len(missing)} of the {len(split_of)} split tiles are not '
            f'in {images.path}: {", ".join(missing)}'
        )
    jobs = []
    for tile, split in split_of.items():
        if tile not in image_members:
            continue
        if tile not in label_members:
            raise PeraDataError(
                f'{labels.path}: no {label_variant} label for tile {tile} '
                f'({images.where(image_members[tile])})'
            )
        crop = None if split == 'val' and val_mode == 'whole' else crop_size
        jobs.append(
            _TileJob(
                tile, split, images, image_members[tile], labels, label_members[tile],
                str(out_dir), crop, stride,
            )
        )  # fmt: skip
    if not jobs:
        raise PeraDataError(
            f'{images.path}: none of the {len(split_of)} {tile_set.name} split tiles found '
            f'(members matching {tile_set.image_pattern!r})'
        )
    for split in tile_set.splits:
        for kind in ('img_dir', 'ann_dir'):
            os.makedirs(Path(out_dir, kind, split), exist_ok=True)
    counts = {split: 0 for split in tile_set.splits}
    if nproc > 1:
        with multiprocessing.get_context('fork').Pool(min(nproc, len(jobs))) as pool:
            done = list(pool.imap(_convert_tile, jobs))
    else:
        done = map(_convert_tile, jobs)
    for tile, split, written, stats in done:
        counts[split] += written
        note = f'{tile} ({split}): {written} file(s)'
        if stats['off_palette'] or stats['unknown']:
            note += (
                f'; label: {stats["off_palette"]} off-palette pixel(s) snapped to the nearest '
                f'ISPRS colour, {stats["unknown"]} of no ISPRS colour set to 0 (ignored)'
            )
        log(f'{tile_set.name}: {note}')
    log(
        f'{tile_set.name}: wrote {counts} image/label pairs to {out_dir} '
        f'(labels: {label_variant}, crops {crop_size} stride {stride}, val {val_mode})'
    )
    return counts
