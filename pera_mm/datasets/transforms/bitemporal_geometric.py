# Copyright (c) pera-mm contributors. All rights reserved.
"""Geometric augmentation of stacked image pairs: one draw for both dates and the label."""

import math
import random
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ...utils.errors import PeraConfigError

# Both dates sit in one (H, W, 2C) ``img`` (see LoadBitemporalImagesFromFile), so every
# operation below moves the two dates by exactly the same pixels; the label maps listed
# in ``seg_fields`` get the same operation with nearest-neighbour sampling.


def _check_prob(name: str, prob: float) -> float:
    if not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
        raise PeraConfigError(f'{name}: prob must be in [0, 1], got {prob!r}')
    return float(prob)


def _apply(results: dict, image_op, label_op) -> dict:
    results['img'] = np.ascontiguousarray(image_op(results['img']))
    for key in results.get('seg_fields', []):
        results[key] = np.ascontiguousarray(label_op(results[key]))
    results['img_shape'] = results['img'].shape[:2]
    return results


@TRANSFORMS.register_module()
class BitemporalRandomFlip(BaseTransform):
    """Flip both dates and the labels together, each direction drawn on its own.

    For each direction in ``directions`` a flip happens with probability ``prob``
    (BIT's ``with_random_hflip`` / ``with_random_vflip``: two independent coin tosses).
    The draw is recorded in ``results['bitemporal_flips']``.

    Args:
        prob (float): probability of each flip.
        directions (Sequence[str]): 'horizontal' and/or 'vertical'.
    """

    DIRECTIONS = {'horizontal': 1, 'vertical': 0}

    def __init__(self, prob: float = 0.5, directions: Sequence[str] = ('horizontal', 'vertical')):
        self.prob = _check_prob('BitemporalRandomFlip', prob)
        directions = [directions] if isinstance(directions, str) else list(directions)
        bad = [d for d in directions if d not in self.DIRECTIONS]
        if bad or not directions:
            raise PeraConfigError(
                f"BitemporalRandomFlip: directions must be 'horizontal' and/or 'vertical', "
                f'got {directions!r}'
            )
        self.directions = directions

    def transform(self, results: dict) -> dict:
        """Draw the flips and apply them to ``img`` and every ``seg_fields`` map."""
        done = [d for d in self.directions if random.random() < self.prob]
        for direction in done:
            axis = self.DIRECTIONS[direction]
            results = _apply(
                results, lambda a, ax=axis: np.flip(a, ax), lambda a, ax=axis: np.flip(a, ax)
            )
        results['bitemporal_flips'] = done
        results['flip'] = bool(done)
        results['flip_direction'] = '+'.join(done) if done else None
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob}, directions={self.directions})'


@TRANSFORMS.register_module()
class BitemporalRandomRotate90(BaseTransform):
    """Rotate both dates and the labels by the same multiple of 90 degrees.

    With probability ``prob``, k is drawn uniformly from {1, 2, 3} (BIT's
    ``with_random_rot``) and everything is rotated counter-clockwise by k * 90 degrees.
    The draw is recorded in ``results['bitemporal_rot90']`` (0 = not rotated).

    Args:
        prob (float): probability of a rotation.
    """

    def __init__(self, prob: float = 0.5):
        self.prob = _check_prob('BitemporalRandomRotate90', prob)

    def transform(self, results: dict) -> dict:
        """Draw k and rotate ``img`` and every ``seg_fields`` map."""
        k = random.randint(1, 3) if random.random() < self.prob else 0
        if k:
            results = _apply(
                results, lambda a: np.rot90(a, k, (0, 1)), lambda a: np.rot90(a, k, (0, 1))
            )
        results['bitemporal_rot90'] = k
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class BitemporalRandomResizedCrop(BaseTransform):
    """Crop a random box of random area and aspect ratio, resize it to ``size``.

    torchvision's ``RandomResizedCrop`` draw (10 tries, then a centred fallback), one box
    for both dates and the labels: the images are resized bilinearly (cv2, per channel,
    so a date's values depend only on that date), the labels with nearest neighbour.
    The box ``(x0, y0, x1, y1)`` is recorded in ``results['bitemporal_crop_box']``.

    Args:
        size (int | tuple[int, int]): output (H, W).
        scale (tuple[float, float]): range of the box area as a fraction of the image.
            (0.5, 1.0) by default: our choice, as the PerA paper names the transform but not
            its range (torchvision's (0.08, 1) would cut 512 crops out of 1024 tiles at
            1/12 of the area).
        ratio (tuple[float, float]): range of the box aspect ratio (W / H), log-uniform.
    """

    def __init__(
        self,
        size: Union[int, Tuple[int, int]],
        scale: Tuple[float, float] = (0.5, 1.0),
        ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    ):
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or any(not isinstance(s, int) or s < 1 for s in size):
            raise PeraConfigError(
                f'BitemporalRandomResizedCrop: size must be positive ints, got {size!r}'
            )
        if not (0 < scale[0] <= scale[1] <= 1):
            raise PeraConfigError(
                'BitemporalRandomResizedCrop: scale must satisfy 0 < min <= max <= 1, '
                f'got {scale!r}'
            )
        if not (0 < ratio[0] <= ratio[1]):
            raise PeraConfigError(
                f'BitemporalRandomResizedCrop: ratio must satisfy 0 < min <= max, got {ratio!r}'
            )
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def draw_box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """One random box ``(x0, y0, x1, y1)`` in an ``height x width`` image."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * random.uniform(*self.scale)
            aspect = math.exp(random.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                y0 = random.randint(0, height - h)
                x0 = random.randint(0, width - w)
                return x0, y0, x0 + w, y0 + h
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        y0, x0 = (height - h) // 2, (width - w) // 2
        return x0, y0, x0 + w, y0 + h

    def transform(self, results: dict) -> dict:
        """Draw the box, crop and resize ``img`` and every ``seg_fields`` map."""
        height, width = results['img'].shape[:2]
        x0, y0, x1, y1 = self.draw_box(height, width)
        out_w, out_h = self.size[1], self.size[0]

        def image_op(a):
            crop = np.ascontiguousarray(a[y0:y1, x0:x1])
            resized = cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
            return resized if resized.ndim == 3 else resized[..., None]

        def label_op(a):
            crop = np.ascontiguousarray(a[y0:y1, x0:x1])
            return cv2.resize(crop, (out_w, out_h), interpolation=cv2.INTER_NEAREST)

        results = _apply(results, image_op, label_op)
        results['bitemporal_crop_box'] = (x0, y0, x1, y1)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(size={self.size}, scale={self.scale}, ratio={self.ratio})'
        )
