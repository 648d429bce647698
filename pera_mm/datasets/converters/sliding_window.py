# Copyright (c) pera-mm contributors. All rights reserved.
"""Crop windows that cover a large tile with a true stride."""

import math
from typing import List, Tuple

from ...utils.errors import PeraConfigError, PeraDataError


def sliding_window_starts(length: int, crop: int, stride: int) -> List[int]:
    """Start offsets of crops of size ``crop`` every ``stride`` pixels along one axis.

    The crops start at ``0, stride, 2 * stride, ...``; the last one is moved
    back to end exactly at ``length``, so every pixel is covered and no crop
    is padded. The count is ``ceil((length - crop) / stride) + 1``.

    Args:
        length (int): the axis length (pixels).
        crop (int): the crop size.
        stride (int): the step between crop starts (``crop - overlap``).

    Returns:
        list[int]: the sorted start offsets.

    Raises:
        PeraConfigError: ``crop`` or ``stride`` is not a positive int, or
            ``stride > crop`` (pixels would be skipped).
        PeraDataError: ``length < crop``.
    """
    for name, value in (('crop', crop), ('stride', stride)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PeraConfigError(f'{name} must be a positive int, got {value!r}')
    if stride > crop:
        raise PeraConfigError(f'stride {stride} > crop {crop} would leave pixels out')
    if length < crop:
        raise PeraDataError(f'a {length}-pixel side is smaller than the {crop}-pixel crop')
    count = math.ceil((length - crop) / stride) + 1
    return [min(i * stride, length - crop) for i in range(count)]


def sliding_window_boxes(
    height: int, width: int, crop: int, stride: int
) -> List[Tuple[int, int, int, int]]:
    """The crop boxes ``(x0, y0, x1, y1)`` covering a ``height x width`` tile, row by row.

    Args:
        height (int): the tile height.
        width (int): the tile width.
        crop (int): the (square) crop size.
        stride (int): the step between crop starts on both axes.

    Returns:
        list[tuple[int, int, int, int]]: one box per crop, ``x1 - x0 == y1 - y0 == crop``.
    """
    ys = sliding_window_starts(height, crop, stride)
    xs = sliding_window_starts(width, crop, stride)
    return [(x, y, x + crop, y + crop) for y in ys for x in xs]
