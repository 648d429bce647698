# Copyright (c) pera-mm contributors. All rights reserved.
"""Bi-temporal change-detection datasets (LEVIR-CD, DSIFN-CD) in the MMSeg scope."""

import os
import os.path as osp
from typing import List

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError


@DATASETS.register_module()
class ChangeDetectionDataset(BaseSegDataset):
    """Pairs of co-registered images (date A, date B) with a binary change mask.

    Each sample has ``img_path`` (date A), ``img_path_b`` (date B) and ``seg_map_path``
    (the mask); use it with :class:`LoadBitemporalImagesFromFile` and
    :class:`LoadChangeLabelFromFile`. The three folders come from ``data_prefix``:
    ``img_path`` (A), ``img_path_b`` (B) and ``seg_map_path`` (label), each joined to
    ``data_root``. The two usual layouts:

    - official LEVIR-CD, ``{train,val,test}/{A,B,label}``:
      ``data_prefix=dict(img_path='train/A', img_path_b='train/B',
      seg_map_path='train/label')``, no ``ann_file`` (every ``img_suffix`` file of A,
      sorted by name);
    - flat, BIT's samples and pre-cut crops, ``A/``, ``B/``, ``label/`` + ``list/*.txt``:
      ``data_prefix=dict(img_path='A', img_path_b='B', seg_map_path='label')``,
      ``ann_file='list/train.txt'`` (one name per line, with or without the suffix).

    A date B image has date A's file name (with ``img_suffix_b``, default
    ``img_suffix``); a label has the stem plus ``seg_map_suffix``. A name whose B image or
    label is missing is a one-line :class:`PeraFileNotFoundError` naming the file; an
    empty split is a :class:`PeraDataError`.

    Classes: 0 = unchanged, 1 = changed (masks are converted from 0/255 when loaded).

    Args:
        img_suffix (str): suffix of the date A (and B) images.
        img_suffix_b (str, optional): suffix of the date B images, if different.
        seg_map_suffix (str): suffix of the masks.
        data_prefix (dict): the three folders (see above).
        **kwargs: as :class:`mmseg.datasets.BaseSegDataset` (``ann_file``, ``data_root``,
            ``pipeline``, ``test_mode``, ...).
    """

    METAINFO = dict(classes=('unchanged', 'changed'), palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(
        self,
        img_suffix: str = '.png',
        img_suffix_b: str = None,
        seg_map_suffix: str = '.png',
        data_prefix: dict = dict(img_path='A', img_path_b='B', seg_map_path='label'),
        **kwargs,
    ) -> None:
        missing = [k for k in ('img_path', 'img_path_b', 'seg_map_path') if k not in data_prefix]
        if missing:
            raise PeraConfigError(
                f'{type(self).__name__}: data_prefix needs img_path (date A), img_path_b '
                f'(date B) and seg_map_path (labels); missing {missing}'
            )
        self.img_suffix_b = img_suffix if img_suffix_b is None else img_suffix_b
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            **kwargs,
        )

    def _names(self, dir_a: str) -> List[str]:
        if self.ann_file:
            if not osp.isfile(self.ann_file):
                raise PeraFileNotFoundError(
                    f'{type(self).__name__}: list file not found: {self.ann_file}'
                )
            with open(self.ann_file) as f:
                lines = [line.split()[0] for line in f if line.strip()]
            return [n[: -len(self.img_suffix)] if n.endswith(self.img_suffix) else n for n in lines]
        if not osp.isdir(dir_a):
            raise PeraFileNotFoundError(f'{type(self).__name__}: date A folder not found: {dir_a}')
        return sorted(
            f[: -len(self.img_suffix)] for f in os.listdir(dir_a) if f.endswith(self.img_suffix)
        )

    def load_data_list(self) -> List[dict]:
        """One entry per pair: the three paths, checked to exist."""
        dir_a = self.data_prefix['img_path']
        dir_b = self.data_prefix['img_path_b']
        dir_label = self.data_prefix['seg_map_path']
        data_list = []
        for stem in self._names(dir_a):
            info = dict(
                img_path=osp.join(dir_a, stem + self.img_suffix),
                img_path_b=osp.join(dir_b, stem + self.img_suffix_b),
                seg_map_path=osp.join(dir_label, stem + self.seg_map_suffix),
            )
            for key, what in (
                ('img_path', 'date A image'),
                ('img_path_b', 'date B image'),
                ('seg_map_path', 'label'),
            ):
                if not osp.isfile(info[key]):
                    raise PeraFileNotFoundError(
                        f'{type(self).__name__}: {what} of pair {stem!r} not found: {info[key]}'
                    )
            info.update(
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[],
                sample_idx=len(data_list),
            )
            data_list.append(info)
        if not data_list:
            source = self.ann_file or dir_a
            raise PeraDataError(
                f'{type(self).__name__}: no pair found in {source} (suffix {self.img_suffix!r})'
            )
        return data_list


@DATASETS.register_module()
class LEVIRCDChangeDataset(ChangeDetectionDataset):
    """LEVIR-CD (Chen & Shi 2020): 637 pairs of 1024 x 1024 Google Earth tiles, 0.5 m.

    Splits 445 / 64 / 128 (train / val / test). PNG images and 0/255 PNG masks in the
    official ``{train,val,test}/{A,B,label}`` layout, or BIT's flat 256 x 256 crops with
    ``list/{train,val,test}.txt``. See :class:`ChangeDetectionDataset` for the prefixes.
    """


@DATASETS.register_module()
class DSIFNCDChangeDataset(ChangeDetectionDataset):
    """DSIFN-CD (Zhang et al. 2020): Google Earth pairs of six Chinese cities, 2 m.

    ChangeFormer's / BIT's preprocessed form: flat 256 x 256 PNG crops ``A/``, ``B/``,
    ``label/`` (0/255) with ``list/{train,val,test}.txt`` (the defaults). The original
    release is ``{train,val,test}/{t1,t2,mask}`` with JPEG images and PNG (test: TIFF)
    masks: ``img_suffix='.jpg'``, ``seg_map_suffix='.png'`` (or ``'.tif'``) and
    ``data_prefix=dict(img_path='train/t1', img_path_b='train/t2',
    seg_map_path='train/mask')``.
    """
