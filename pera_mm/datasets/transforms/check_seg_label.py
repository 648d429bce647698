# Copyright (c) pera-mm contributors. All rights reserved.
"""Check a loaded segmentation label against its image and the classes."""

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...utils.errors import PeraConfigError, PeraDataError


@TRANSFORMS.register_module()
class CheckSegLabel(BaseTransform):
    """Raise a one-line error naming the file when a label does not fit its image.

    Place it right after MMSeg's ``LoadAnnotations`` (``reduce_zero_label`` and
    ``label_map`` are applied by then). It checks that ``gt_seg_map`` is a
    single-channel map of the image's original size (``ori_shape``, set by
    ``LoadImageFromFile``), and that every value is a class index
    ``0..num_classes-1`` or ``ignore_index``. Nothing is modified.

    Required Keys:

    - gt_seg_map
    - ori_shape (or img)
    - seg_map_path, img_path (optional, named in the errors)

    Args:
        num_classes (int): number of classes of the dataset.
        ignore_index (int): the one value allowed outside the classes. Defaults to 255.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
            raise PeraConfigError(
                f'CheckSegLabel: num_classes must be a positive int, got {num_classes!r}'
            )
        if not isinstance(ignore_index, int) or isinstance(ignore_index, bool):
            raise PeraConfigError(
                f'CheckSegLabel: ignore_index must be an int, got {ignore_index!r}'
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        """Check ``results['gt_seg_map']``.

        Args:
            results (dict): the pipeline's result dict.

        Returns:
            dict: ``results``, unchanged.

        Raises:
            PeraDataError: the label's shape or values are not as expected.
        """
        label = results.get('gt_seg_map')
        if label is None:
            raise PeraConfigError(
                'CheckSegLabel: no gt_seg_map in the results; place it after LoadAnnotations'
            )
        label_path = results.get('seg_map_path', '<label in memory>')
        img_path = results.get('img_path', '<image in memory>')
        if 'ori_shape' in results:
            img_shape = tuple(results['ori_shape'][:2])
        else:
            img_shape = tuple(results['img'].shape[:2])
        label = np.asarray(label)
        if label.ndim != 2:
            raise PeraDataError(
                f'label {label_path}: expected a single-channel class map, got an array of '
                f'shape {label.shape}'
            )
        if label.shape != img_shape:
            raise PeraDataError(
                f'label {label_path} is {label.shape[0]}x{label.shape[1]} (HxW) but its image '
                f'{img_path} is {img_shape[0]}x{img_shape[1]}'
            )
        bad = (label >= self.num_classes) | (label < 0)
        bad &= label != self.ignore_index
        if bad.any():
            values = np.unique(label[bad])
            shown = ', '.join(str(int(v)) for v in values[:8]) + (
                ', ...' if len(values) > 8 else ''
            )
            reduced = ' after reduce_zero_label' if results.get('reduce_zero_label') else ''
            raise PeraDataError(
                f'label {label_path} has value(s) {shown}{reduced} outside the classes '
                f'0..{self.num_classes - 1} (and the ignored {self.ignore_index}) in '
                f'{int(bad.sum())} pixel(s)'
            )
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_classes={self.num_classes}, '
            f'ignore_index={self.ignore_index})'
        )
