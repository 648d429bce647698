# Copyright (c) pera-mm contributors. All rights reserved.
"""A small DIOR-layout dataset made from the real DOTA samples of ``../shared/data/DOTA``.

DIOR itself is not available here. The two DOTA v1 example images (ships and harbours in
P0706, vehicles in P1888) are cut into 128 x 128 crops; each oriented DOTA box becomes the
horizontal box around its polygon, its DOTA class the DIOR class of the same objects
(small/large-vehicle -> vehicle, ship, harbor, ...; classes DIOR has not are left out) and its
DOTA difficulty flag the XML ``difficult``. Names are written in mixed letter case on purpose.
Boxes inside a crop are written as 1-based inclusive pixels (DIOR's convention); the boxes the
crop border cuts are written unclipped (partly outside the image), and one degenerate box
(xmax == xmin) and one box beyond the image are added. The manifest holds the counts the
dataset must report.
"""

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

CROP = 128

#: DOTA v1 class -> DIOR class (the same kind of object)
DOTA_TO_DIOR = {
    'plane': 'airplane',
    'ship': 'ship',
    'harbor': 'harbor',
    'small-vehicle': 'vehicle',
    'large-vehicle': 'vehicle',
    'storage-tank': 'storagetank',
    'tennis-court': 'tenniscourt',
    'baseball-diamond': 'baseballfield',
    'basketball-court': 'basketballcourt',
    'ground-track-field': 'groundtrackfield',
    'bridge': 'bridge',
}

#: split -> crops: (DOTA image, rank of the window among that image's busiest ones, or an
#: explicit top-left corner); (983, 980) of P0706 holds its one difficult ship
SPLIT_CROPS = {
    'train': [('P1888', 0), ('P0706', 0)],
    'val': [('P1888', 1)],
    'test': [('P0706', 1), ('P1888', 2), ('P0706', (983, 980))],
}


def read_dota(label_file: Path) -> List[Tuple[str, np.ndarray, int]]:
    """(class, horizontal box [x1, y1, x2, y2] in 0-based pixels, difficult) per object."""
    objects = []
    for line in label_file.read_text().splitlines():
        parts = line.split()
        if len(parts) < 9 or ':' in line:
            continue  # the imagesource / gsd header
        poly = np.array([float(v) for v in parts[:8]]).reshape(4, 2)
        box = np.array([*poly.min(0), *poly.max(0)])
        objects.append((parts[8], box, int(parts[9]) if len(parts) > 9 else 0))
    return objects


def mixed_case(name: str, i: int) -> str:
    """The DIOR name in one of three spellings, by object index."""
    return (name, name.upper(), name[:1].upper() + name[1:])[i % 3]


def busiest_windows(objects, size: Tuple[int, int], count: int) -> List[Tuple[int, int]]:
    """Top-left corners of the ``count`` crops with the most DIOR-class boxes fully inside."""
    w, h = size
    scored = []
    for y0 in range(0, h - CROP + 1, 32):
        for x0 in range(0, w - CROP + 1, 32):
            inside = sum(
                1
                for name, b, _ in objects
                if name in DOTA_TO_DIOR
                and b[0] >= x0
                and b[1] >= y0
                and b[2] <= x0 + CROP - 1
                and b[3] <= y0 + CROP - 1
            )
            scored.append((-inside, y0, x0))
    chosen = []
    for _, y0, x0 in sorted(scored):  # non-overlapping windows, busiest first
        if all(abs(x0 - x) >= CROP or abs(y0 - y) >= CROP for x, y in chosen):
            chosen.append((x0, y0))
        if len(chosen) == count:
            break
    return chosen


def _xml(file_name: str, objects: List[dict]) -> bytes:
    ann = ET.Element('annotation')
    ET.SubElement(ann, 'filename').text = file_name
    ET.SubElement(ET.SubElement(ann, 'source'), 'database').text = 'DIOR fixture from DOTA'
    size = ET.SubElement(ann, 'size')
    for key, value in (('width', CROP), ('height', CROP), ('depth', 3)):
        ET.SubElement(size, key).text = str(value)
    for o in objects:
        node = ET.SubElement(ann, 'object')
        ET.SubElement(node, 'name').text = o['name']
        ET.SubElement(node, 'pose').text = 'Unspecified'
        ET.SubElement(node, 'truncated').text = '0'
        ET.SubElement(node, 'difficult').text = str(o['difficult'])
        box = ET.SubElement(node, 'bndbox')
        for key, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), o['bbox']):
            ET.SubElement(box, key).text = str(value)
    return ET.tostring(ann)


def build_dior_fixture(dota: Path, root: Path) -> Dict[str, dict]:
    """Write the DIOR layout under ``root`` from the DOTA samples in ``dota``.

    Returns:
        dict: split -> counts (``images``, ``boxes`` kept, ``difficult``, ``clipped``,
        ``skipped_outside``, ``skipped_degenerate``) and ``ids``; ``'objects'`` maps each
        image id to the boxes it must load (0-based, clipped) and labels by DIOR name.
    """
    ann_dir = root / 'Annotations' / 'Horizontal Bounding Boxes'
    sets_dir = root / 'ImageSets' / 'Main'
    for d in (ann_dir, sets_dir, root / 'JPEGImages-trainval', root / 'JPEGImages-test'):
        d.mkdir(parents=True, exist_ok=True)
    sources = {}
    for name in {n for crops in SPLIT_CROPS.values() for n, _ in crops}:
        image = Image.open(dota / 'images' / f'{name}.png').convert('RGB')
        objects = read_dota(dota / 'labelTxt' / f'{name}.txt')
        sources[name] = (image, objects, busiest_windows(objects, image.size, 3))

    manifest: Dict[str, dict] = {'objects': {}}
    next_id = 1
    for split, crops in SPLIT_CROPS.items():
        counts = dict(
            images=0, boxes=0, difficult=0, clipped=0, skipped_outside=0, skipped_degenerate=0
        )
        ids = []
        for k, (src, rank) in enumerate(crops):
            image, objects, windows = sources[src]
            x0, y0 = rank if isinstance(rank, tuple) else windows[rank]
            img_id = f'{next_id:05d}'
            next_id += 1
            folder = 'JPEGImages-test' if split == 'test' else 'JPEGImages-trainval'
            image.crop((x0, y0, x0 + CROP, y0 + CROP)).save(
                root / folder / f'{img_id}.jpg', quality=95
            )
            written, expected = [], []
            for i, (dota_name, b, difficult) in enumerate(objects):
                if dota_name not in DOTA_TO_DIOR:
                    continue
                # 1-based inclusive pixels of the crop (DIOR's XML convention)
                x1, y1, x2, y2 = (int(round(v)) for v in (b - [x0, y0, x0, y0]))
                x1, y1, x2, y2 = x1 + 1, y1 + 1, x2 + 1, y2 + 1
                if x2 <= x1 or y2 <= y1:
                    continue  # a DOTA box that is degenerate at pixel precision: not written
                if x2 < 1 or y2 < 1 or x1 > CROP or y1 > CROP:
                    continue  # not in this crop
                inside = x1 >= 1 and y1 >= 1 and x2 <= CROP and y2 <= CROP
                if not inside and (
                    min(x2, CROP) - max(x1, 1) <= 0 or min(y2, CROP) - max(y1, 1) <= 0
                ):
                    continue  # a sliver on the border: nothing of it left after clipping
                dior = DOTA_TO_DIOR[dota_name]
                written.append(
                    dict(
                        name=mixed_case(dior, len(written)),
                        difficult=difficult,
                        bbox=(x1, y1, x2, y2),
                    )
                )
                counts['boxes'] += 1
                counts['difficult'] += difficult
                counts['clipped'] += int(not inside)
                clip = [max(x1, 1) - 1, max(y1, 1) - 1, min(x2, CROP) - 1, min(y2, CROP) - 1]
                expected.append((dior, clip, difficult))
            if k == 0:  # the deliberately bad boxes, in the first crop of each split
                written.append(dict(name='Vehicle', difficult=0, bbox=(40, 20, 40, 30)))
                written.append(dict(name='ship', difficult=0, bbox=(CROP + 5, 10, CROP + 20, 30)))
                counts['skipped_degenerate'] += 1
                counts['skipped_outside'] += 1
            (ann_dir / f'{img_id}.xml').write_bytes(_xml(f'{img_id}.jpg', written))
            manifest['objects'][img_id] = expected
            counts['images'] += 1
            ids.append(img_id)
        (sets_dir / f'{split}.txt').write_text(''.join(f'{i}\n' for i in ids))
        manifest[split] = dict(counts, ids=ids)
    return manifest
