# Copyright (c) pera-mm contributors. All rights reserved.
"""The ISPRS 2D labelling colour code and its MMSeg label indices."""

from typing import Tuple

import numpy as np

from ...utils.errors import PeraDataError

#: (RGB colour, class) in MMSeg's on-disk index order for PotsdamDataset / ISPRSDataset:
#: 0 = black (the eroded boundary of the ``noBoundary`` labels; ignored under
#: ``reduce_zero_label``), 1..6 = the six classes (0..5 after ``reduce_zero_label``).
ISPRS_PALETTE = (
    ((0, 0, 0), 'boundary (ignored)'),
    ((255, 255, 255), 'impervious_surface'),
    ((0, 0, 255), 'building'),
    ((0, 255, 255), 'low_vegetation'),
    ((0, 255, 0), 'tree'),
    ((255, 255, 0), 'car'),
    ((255, 0, 0), 'clutter'),
)

# index of every binarised colour r*4 + g*2 + b; magenta (5) is no ISPRS colour
_UNKNOWN = 255
_CODE_TO_INDEX = np.full(8, _UNKNOWN, dtype=np.uint8)
for _index, ((_r, _g, _b), _) in enumerate(ISPRS_PALETTE):
    _CODE_TO_INDEX[(_r // 255) * 4 + (_g // 255) * 2 + _b // 255] = _index


def isprs_colour_to_index(rgb: np.ndarray, source: str = '<array>') -> Tuple[np.ndarray, dict]:
    """Map an ISPRS colour-coded label to MMSeg label indices (0 ignored, 1..6 classes).

    Each channel is thresholded at 128 first, so a few off-palette values
    (compression noise) snap to the nearest palette colour; they are counted.
    The one binarised colour that is no ISPRS class (magenta) becomes 0
    (ignored) and is counted too.

    Args:
        rgb (np.ndarray): ``(H, W, 3)`` uint8 label in RGB order.
        source (str): the file named in errors.

    Returns:
        tuple[np.ndarray, dict]: the ``(H, W)`` uint8 index map, and the counts
        ``dict(off_palette=..., unknown=...)`` of snapped and unknown pixels.

    Raises:
        PeraDataError: ``rgb`` is not an ``(H, W, 3)`` uint8 array.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise PeraDataError(
            f'{source}: expected an 8-bit RGB colour-coded label, got an array of shape '
            f'{rgb.shape} and dtype {rgb.dtype}'
        )
    bits = rgb >= 128
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]
    index = _CODE_TO_INDEX[code]
    off_palette = int(np.count_nonzero(((rgb != 0) & (rgb != 255)).any(axis=2)))
    unknown = index == _UNKNOWN
    index[unknown] = 0
    return index, dict(off_palette=off_palette, unknown=int(np.count_nonzero(unknown)))


def isprs_index_to_colour(index: np.ndarray) -> np.ndarray:
    """The colour-coded RGB label of an MMSeg index map (values 0..6).

    Args:
        index (np.ndarray): ``(H, W)`` integer label indices.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB.
    """
    palette = np.array([colour for colour, _ in ISPRS_PALETTE], dtype=np.uint8)
    return palette[index]
