# Copyright (c) pera-mm contributors. All rights reserved.
"""DIOR horizontal-box object detection (20 classes) on MMDet's XML dataset.

Layout (as the dataset is distributed)::

    DIOR/
        JPEGImages-trainval/00001.jpg ... 11725.jpg
        JPEGImages-test/11726.jpg ... 23463.jpg
        Annotations/Horizontal Bounding Boxes/00001.xml ...
        ImageSets/Main/train.txt, val.txt, test.txt

Pixel coordinates. The XML boxes are VOC-style 1-based inclusive pixel indices (a box
over the whole 800 x 800 image is ``1 1 800 800``). As MMDet does for VOC, 1 is
subtracted, so boxes are 0-based inclusive indices in ``[0, W - 1] x [0, H - 1]``;
MMDet's ``VOCMetric`` (and our ``CocoStyleAPMetric`` by default) count a box's area
as ``(x2 - x1 + 1) * (y2 - y1 + 1)`` pixels, the same convention.
"""

import os.path as osp
import xml.etree.ElementTree as ET
from io import BytesIO
from typing import Dict, List, Optional, Sequence, Tuple

from mmdet.datasets import XMLDataset
from mmdet.registry import DATASETS
from mmengine.fileio import get, get_local_path, list_from_file
from mmengine.logging import print_log
from PIL import Image

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

#: DIOR's 20 classes, spelled as in the dataset paper's label files.
DIOR_CLASSES = (
    'airplane',
    'airport',
    'baseballfield',
    'basketballcourt',
    'bridge',
    'chimney',
    'dam',
    'Expressway-Service-area',
    'Expressway-toll-station',
    'golffield',
    'groundtrackfield',
    'harbor',
    'overpass',
    'ship',
    'stadium',
    'storagetank',
    'tenniscourt',
    'trainstation',
    'vehicle',
    'windmill',
)

DIOR_PALETTE = [
    (220, 20, 60), (119, 11, 32), (0, 0, 142), (0, 0, 230), (106, 0, 228),
    (0, 60, 100), (0, 80, 100), (0, 0, 70), (0, 0, 192), (250, 170, 30),
    (100, 170, 30), (220, 220, 0), (175, 116, 175), (250, 0, 30), (165, 42, 42),
    (255, 77, 255), (0, 226, 252), (182, 182, 255), (0, 82, 0), (120, 166, 157),
]  # fmt: skip

#: image folder of each split
SPLIT_IMG_SUBDIRS = dict(
    train='JPEGImages-trainval',
    val='JPEGImages-trainval',
    trainval='JPEGImages-trainval',
    test='JPEGImages-test',
)
#: image-set files of each split (trainval = train + val)
SPLIT_IMAGE_SETS = dict(train=('train',), val=('val',), trainval=('train', 'val'), test=('test',))

#: names of the box counters (``box_counts``)
BOX_COUNT_KEYS = (
    'boxes',
    'difficult',
    'clipped',
    'skipped_outside',
    'skipped_degenerate',
    'excluded_class',
)


@DATASETS.register_module()
class DIORDataset(XMLDataset):
    """DIOR horizontal-box detection in its own folder layout.

    Class names are matched case-insensitively (the raw XML spells
    ``Expressway-Service-area`` and ``expressway-service-area``); a name that is not
    one of the 20 DIOR classes raises a one-line :class:`PeraDataError` naming the
    XML file (MMDet's ``XMLDataset`` silently drops such objects). With a
    ``metainfo=dict(classes=...)`` subset, objects of the other DIOR classes are
    left out and counted (``excluded_class``).

    Box policy (after the 1-pixel shift of the module docstring):

    - ``difficult=1``: kept with ``ignore_flag=1`` (MMDet's ``ignored_instances``:
      not a training target; in evaluation matched detections count neither as
      true nor false positives); counted as ``difficult``.
    - ``xmax <= xmin`` or ``ymax <= ymin`` (no width or height in MMDet's
      ``x2 - x1`` training convention), or a non-finite value: skipped, counted as
      ``skipped_degenerate``.
    - partly outside the image: clipped to ``[0, W - 1] x [0, H - 1]``, counted as
      ``clipped``; no positive width and height left inside: skipped, counted as
      ``skipped_outside``.

    The counts of the split are logged once it is loaded and kept in
    ``box_counts`` (also ``num_clipped``, ``num_skipped_outside``,
    ``num_skipped_degenerate``); ``box_issues`` lists ``(xml_path, object_index,
    kind)`` of every clipped or skipped box.

    Args:
        split (str): 'train', 'val', 'trainval' (train.txt + val.txt) or 'test'.
            Chooses the image-set files and the image folder.
        ann_file (str): an explicit image-id list (relative to ``data_root``)
            instead of the split's files. Defaults to ''.
        img_subdir (str, optional): image folder; default from ``split``
            (``JPEGImages-trainval`` or ``JPEGImages-test``).
        ann_subdir (str): XML folder. Defaults to
            ``'Annotations/Horizontal Bounding Boxes'``.
        image_set_dir (str): folder of the split files. Defaults to ``'ImageSets/Main'``.
        img_suffix (str): image file suffix. Defaults to '.jpg'.
        minus_one (bool): subtract 1 from the XML coordinates (1-based -> 0-based
            inclusive). Defaults to True, as MMDet's VOC datasets.
        check_images (bool): check at load time that every (local) image file
            exists. Defaults to True.
        **kwargs: ``data_root``, ``pipeline``, ``filter_cfg``, ``test_mode`` ...
            of MMDet's ``BaseDetDataset``.
    """

    METAINFO = dict(classes=DIOR_CLASSES, palette=DIOR_PALETTE)

    def __init__(
        self,
        split: str = 'trainval',
        ann_file: str = '',
        img_subdir: Optional[str] = None,
        ann_subdir: str = 'Annotations/Horizontal Bounding Boxes',
        image_set_dir: str = 'ImageSets/Main',
        img_suffix: str = '.jpg',
        minus_one: bool = True,
        check_images: bool = True,
        **kwargs,
    ) -> None:
        if split not in SPLIT_IMAGE_SETS:
            raise PeraConfigError(
                f'DIORDataset: split must be one of {list(SPLIT_IMAGE_SETS)}, got {split!r}'
            )
        self.split = split
        self.image_set_dir = image_set_dir
        self.img_suffix = img_suffix
        self.minus_one = minus_one
        self.check_images = check_images
        self.box_counts: Dict[str, int] = dict.fromkeys(BOX_COUNT_KEYS, 0)
        self.box_issues: List[Tuple[str, int, str]] = []
        super().__init__(
            img_subdir=img_subdir or SPLIT_IMG_SUBDIRS[split],
            ann_subdir=ann_subdir,
            ann_file=ann_file,
            **kwargs,
        )

    # ------------------------------------------------------------------ counters
    @property
    def num_clipped(self) -> int:
        """Boxes partly outside their image, clipped to it."""
        return self.box_counts['clipped']

    @property
    def num_skipped_outside(self) -> int:
        """Boxes without a positive-area part inside their image, skipped."""
        return self.box_counts['skipped_outside']

    @property
    def num_skipped_degenerate(self) -> int:
        """Boxes with no width or height (or non-finite values), skipped."""
        return self.box_counts['skipped_degenerate']

    # ------------------------------------------------------------------ loading
    def _class_index(self) -> Dict[str, int]:
        classes = self._metainfo.get('classes')
        known = {c.lower() for c in DIOR_CLASSES}
        unknown = [c for c in classes if str(c).lower() not in known]
        if unknown:
            raise PeraConfigError(
                f'DIORDataset: metainfo classes {unknown} are not DIOR classes '
                f'(expected names from {list(DIOR_CLASSES)})'
            )
        return {str(c).lower(): i for i, c in enumerate(classes)}

    def _image_ids(self) -> List[str]:
        if self.ann_file:
            files = [self.ann_file]
        else:
            files = [
                osp.join(self.data_root, self.image_set_dir, f'{name}.txt')
                for name in SPLIT_IMAGE_SETS[self.split]
            ]
        ids: List[str] = []
        for path in files:
            if '://' not in path and not osp.isfile(path):
                raise PeraFileNotFoundError(f'DIORDataset: image-set file {path} does not exist')
            ids += [
                line.strip()
                for line in list_from_file(path, backend_args=self.backend_args)
                if line.strip()
            ]
        if not ids:
            raise PeraDataError(f'DIORDataset: no image ids in {", ".join(files)}')
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise PeraDataError(
                f'DIORDataset: image ids listed more than once in {", ".join(files)}: {dup}'
            )
        return ids

    def load_data_list(self) -> List[dict]:
        """Parse the split's XML files, apply the box policy and log the counts.

        Returns:
            list[dict]: one dict per image (``img_path``, ``img_id``, ``xml_path``,
            ``height``, ``width``, ``instances``).
        """
        self.cat2label = self._class_index()
        self.box_counts = dict.fromkeys(BOX_COUNT_KEYS, 0)
        self.box_issues = []
        data_list = []
        for img_id in self._image_ids():
            img_path = osp.join(self.data_root, self.img_subdir, f'{img_id}{self.img_suffix}')
            if self.check_images and '://' not in img_path and not osp.isfile(img_path):
                raise PeraFileNotFoundError(
                    f'DIORDataset: image {img_path} of id {img_id!r} does not exist'
                )
            raw = dict(
                img_id=img_id,
                img_path=img_path,
                xml_path=osp.join(self.data_root, self.ann_subdir, f'{img_id}.xml'),
            )
            data_list.append(self.parse_data_info(raw))
        self._log_counts(len(data_list))
        return data_list

    def _log_counts(self, num_images: int) -> None:
        c = self.box_counts
        print_log(
            f'DIORDataset [{self.split}]: {num_images} images, {c["boxes"]} boxes kept '
            f'({c["difficult"]} difficult, ignored); {c["clipped"]} partly outside the image '
            f'clipped; skipped {c["skipped_outside"]} fully outside and '
            f'{c["skipped_degenerate"]} degenerate; {c["excluded_class"]} of classes not '
            f'selected left out',
            logger='current',
        )

    def parse_data_info(self, img_info: dict) -> dict:
        """One image's data info from its XML file.

        Args:
            img_info (dict): ``img_id``, ``img_path`` and ``xml_path``.

        Returns:
            dict: the data info with ``height``, ``width`` and ``instances``.
        """
        xml_path = img_info['xml_path']
        if '://' not in xml_path and not osp.isfile(xml_path):
            raise PeraFileNotFoundError(
                f'DIORDataset: annotation {xml_path} of image id {img_info["img_id"]!r} '
                'does not exist'
            )
        try:
            with get_local_path(xml_path, backend_args=self.backend_args) as local_path:
                root = ET.parse(local_path).getroot()
        except ET.ParseError as err:
            raise PeraDataError(f'{xml_path}: not a valid XML file ({err})') from err
        width, height = self._image_size(root, img_info['img_path'], xml_path)
        data_info = dict(img_info, width=width, height=height)
        data_info['instances'] = self._parse_objects(root, xml_path, width, height)
        return data_info

    def _image_size(self, root, img_path: str, xml_path: str) -> Tuple[int, int]:
        size = root.find('size')
        try:
            width = int(float(size.find('width').text))
            height = int(float(size.find('height').text))
        except (AttributeError, TypeError, ValueError):
            width = height = 0
        if width > 0 and height > 0:
            return width, height
        try:  # no usable <size>: read the image header
            with Image.open(BytesIO(get(img_path, backend_args=self.backend_args))) as img:
                return img.size
        except (OSError, FileNotFoundError) as err:
            raise PeraDataError(
                f'{xml_path}: no <size> and its image {img_path} cannot be read ({err})'
            ) from err

    def _parse_objects(self, root, xml_path: str, width: int, height: int) -> List[dict]:
        instances = []
        min_size = self.bbox_min_size
        shift = 1.0 if self.minus_one else 0.0
        for index, obj in enumerate(root.findall('object')):
            name_node = obj.find('name')
            name = (name_node.text or '').strip() if name_node is not None else ''
            label = self.cat2label.get(name.lower())
            if label is None:
                if name.lower() in {c.lower() for c in DIOR_CLASSES}:
                    self.box_counts['excluded_class'] += 1
                    continue
                raise PeraDataError(
                    f'{xml_path}: object {index} has class {name!r}, not a DIOR class '
                    f'(expected one of {list(DIOR_CLASSES)}, any letter case)'
                )
            box = self._read_box(obj, xml_path, index)
            if box is None:
                self._count(xml_path, index, 'skipped_degenerate')
                continue
            x1, y1, x2, y2 = (v - shift for v in box)
            if x2 <= x1 or y2 <= y1:
                self._count(xml_path, index, 'skipped_degenerate')
                continue
            cx1, cy1 = max(x1, 0.0), max(y1, 0.0)
            cx2, cy2 = min(x2, width - 1.0), min(y2, height - 1.0)
            if cx2 <= cx1 or cy2 <= cy1:
                self._count(xml_path, index, 'skipped_outside')
                continue
            if (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2):
                self._count(xml_path, index, 'clipped')
            difficult = obj.find('difficult')
            try:
                difficult = int(difficult.text) if difficult is not None else 0
            except (TypeError, ValueError):
                raise PeraDataError(
                    f'{xml_path}: object {index} has <difficult> {difficult.text!r}, '
                    'expected 0 or 1'
                ) from None
            ignore = bool(difficult)
            if min_size is not None and (cx2 - cx1 < min_size or cy2 - cy1 < min_size):
                ignore = True
            self.box_counts['boxes'] += 1
            self.box_counts['difficult'] += int(bool(difficult))
            instances.append(
                dict(bbox=[cx1, cy1, cx2, cy2], bbox_label=label, ignore_flag=int(ignore))
            )
        return instances

    @staticmethod
    def _read_box(obj, xml_path: str, index: int) -> Optional[Sequence[float]]:
        node = obj.find('bndbox')
        values = []
        for key in ('xmin', 'ymin', 'xmax', 'ymax'):
            field = node.find(key) if node is not None else None
            try:
                values.append(float(field.text))
            except (AttributeError, TypeError, ValueError):
                raise PeraDataError(
                    f'{xml_path}: object {index} has no numeric <bndbox>/<{key}>'
                ) from None
        if not all(v == v and abs(v) != float('inf') for v in values):
            return None
        return values

    def _count(self, xml_path: str, index: int, kind: str) -> None:
        self.box_counts[kind] += 1
        self.box_issues.append((xml_path, index, kind))
