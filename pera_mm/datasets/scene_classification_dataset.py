# Copyright (c) pera-mm contributors. All rights reserved.
"""MMPretrain's ``CustomDataset`` for the split files of ``split_scene_dataset.py``."""

import os.path as osp
from typing import Sequence, Union

from mmengine.fileio import list_from_file
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from ..utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError


@DATASETS.register_module()
class SceneClassificationDataset(CustomDataset):
    """A scene-classification split: an annotation file and a classes file.

    ``CustomDataset`` with annotation lines ``relative/path label`` (paths
    relative to ``data_root/data_prefix``), as written by
    ``tools/dataset_converters/split_scene_dataset.py``, and three differences:

    - a relative ``classes`` file path is relative to ``data_root`` (like
      ``ann_file``), so one ``data_root`` setting moves the whole split;
    - the annotation file is checked when loaded: a malformed line, a label
      outside the classes or a listed image that does not exist is a one-line
      :class:`PeraDataError` / :class:`PeraFileNotFoundError` naming the file
      and line (image existence is checked on local paths only);
    - ``ann_file`` is required (this class never scans folders: the split
      tool does, once, with its seeded stratified rule).

    Args:
        ann_file (str): annotation file (relative to ``data_root`` unless absolute).
        classes (str | Sequence[str]): classes file (relative to ``data_root``
            unless absolute) or the class names.
        data_root (str): dataset root. Defaults to ''.
        data_prefix (str | dict): image folder below ``data_root``. Defaults to ''.
        **kwargs: other ``CustomDataset`` arguments (``pipeline``, ``test_mode``,
            ``indices``, ...).
    """

    def __init__(
        self,
        ann_file: str,
        classes: Union[str, Sequence[str]],
        data_root: str = '',
        data_prefix: Union[str, dict] = '',
        **kwargs,
    ):
        if not ann_file:
            raise PeraConfigError('SceneClassificationDataset: ann_file is required')
        if isinstance(classes, str):
            if data_root and not osp.isabs(classes):
                classes = osp.join(data_root, classes)
            if not osp.isfile(classes):
                raise PeraFileNotFoundError(f'{classes}: no such classes file')
            classes = [c.strip() for c in list_from_file(classes) if c.strip()]
        if not classes:
            raise PeraConfigError('SceneClassificationDataset: classes is empty')
        kwargs.pop('with_label', None)
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_file,
            with_label=True,
            classes=classes,
            **kwargs,
        )

    def load_data_list(self):
        """The samples of the annotation file, each checked."""
        if not osp.isfile(self.ann_file):
            raise PeraFileNotFoundError(f'{self.ann_file}: no such annotation file')
        num_classes = len(self.CLASSES)
        data_list = []
        for lineno, line in enumerate(list_from_file(self.ann_file), 1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(None, 1)  # space or tab before the label
            if len(parts) != 2 or not parts[1].lstrip('-').isdigit():
                raise PeraDataError(
                    f'{self.ann_file}:{lineno}: expected "relative/path label", got {line!r}'
                )
            path, label = parts[0], int(parts[1])
            if not 0 <= label < num_classes:
                raise PeraDataError(
                    f'{self.ann_file}:{lineno}: label {label} is outside the {num_classes} '
                    f'classes [0, {num_classes - 1}]'
                )
            img_path = osp.join(self.img_prefix, path)
            if '://' not in img_path and not osp.isfile(img_path):
                raise PeraFileNotFoundError(
                    f'{self.ann_file}:{lineno}: image {img_path} does not exist'
                )
            data_list.append(dict(img_path=img_path, gt_label=label))
        if not data_list:
            raise PeraDataError(f'{self.ann_file}: no sample listed')
        return data_list
