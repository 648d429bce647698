# Copyright (c) pera-mm contributors. All rights reserved.
"""Colour augmentation of stacked image pairs, per date or shared, only where a config asks."""

import random
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS
from PIL import Image, ImageFilter

from ...utils.errors import PeraConfigError
from .bitemporal_loading import split_dates


def _factor_range(name: str, value: float) -> Tuple[float, float]:
    if not isinstance(value, (int, float)) or value < 0:
        raise PeraConfigError(f'BitemporalColorJitter: {name} must be a number >= 0, got {value!r}')
    return max(0.0, 1.0 - value), 1.0 + value


def check_8bit_rgb(transform, date: np.ndarray) -> None:
    """Colour transforms work in 8-bit RGB; anything else is the config's error.

    Checked on every sample, before any random draw, so that a wrong pipeline
    fails on the first sample rather than on the first jittered one.
    """
    if date.dtype != np.uint8 or date.ndim != 3 or date.shape[2] != 3:
        bands = date.shape[2] if date.ndim == 3 else 1
        raise PeraConfigError(
            f'{type(transform).__name__}: needs 8-bit 3-band (RGB) dates, got {date.dtype} '
            f'with {bands} bands (drop it from the pipeline of multi-band or non-8-bit data)'
        )


@TRANSFORMS.register_module()
class BitemporalColorJitter(BaseTransform):
    """Random brightness, contrast and saturation of 8-bit RGB dates.

    With ``per_date=True`` (the default) each date gets its own draw, so the colour
    differences that real acquisitions have are simulated; ``per_date=False`` applies one
    draw to both. Each factor is drawn uniformly from ``[1 - v, 1 + v]`` and applied in the
    order brightness, contrast, saturation (torchvision's definitions: contrast around
    the date's mean grey value, saturation towards its grey image); the result is
    clipped to [0, 255]. The PerA LEVIR-CD recipe uses no colour jitter, so no shipped
    change-detection config includes this transform.

    Args:
        brightness (float): brightness jitter ``v``.
        contrast (float): contrast jitter ``v``.
        saturation (float): saturation jitter ``v``.
        prob (float): probability of jittering (per date when ``per_date``).
        per_date (bool): independent draws for the two dates.
    """

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        prob: float = 1.0,
        per_date: bool = True,
    ):
        self.ranges = dict(
            brightness=_factor_range('brightness', brightness),
            contrast=_factor_range('contrast', contrast),
            saturation=_factor_range('saturation', saturation),
        )
        if not 0.0 <= prob <= 1.0:
            raise PeraConfigError(f'BitemporalColorJitter: prob must be in [0, 1], got {prob!r}')
        self.prob, self.per_date = float(prob), bool(per_date)

    def _draw(self) -> Optional[dict]:
        if random.random() >= self.prob:
            return None
        return {k: random.uniform(*r) for k, r in self.ranges.items()}

    @staticmethod
    def _jitter(date: np.ndarray, factors: Optional[dict]) -> np.ndarray:
        if factors is None:
            return date
        x = date.astype(np.float32) * factors['brightness']
        x = np.clip(x, 0, 255)
        grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = np.clip((x - grey.mean()) * factors['contrast'] + grey.mean(), 0, 255)
        grey = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        x = np.clip((x - grey) * factors['saturation'] + grey, 0, 255)
        return x.round().astype(np.uint8)

    def transform(self, results: dict) -> dict:
        """Jitter each date (or both with one draw)."""
        date_a, date_b = split_dates(results['img'])
        check_8bit_rgb(self, date_a)
        draw_a = self._draw()
        draw_b = self._draw() if self.per_date else draw_a
        results['img'] = np.concatenate(
            [self._jitter(date_a, draw_a), self._jitter(date_b, draw_b)], axis=2
        )
        results['bitemporal_color_factors'] = (draw_a, draw_b)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(ranges={self.ranges}, prob={self.prob}, '
            f'per_date={self.per_date})'
        )


@TRANSFORMS.register_module()
class BitemporalGaussianBlur(BaseTransform):
    """PIL Gaussian blur of both dates with one radius (BIT's ``with_random_blur``).

    With probability ``prob`` a radius is drawn uniformly from ``[0, max_radius]`` and
    both 8-bit RGB dates are blurred with it (``per_date=True`` draws one radius per date).

    Args:
        prob (float): probability of blurring.
        max_radius (float): largest radius (pixels).
        per_date (bool): independent radii for the two dates.
    """

    def __init__(self, prob: float = 0.5, max_radius: float = 1.0, per_date: bool = False):
        if not 0.0 <= prob <= 1.0 or max_radius < 0:
            raise PeraConfigError(
                f'BitemporalGaussianBlur: need prob in [0, 1] and max_radius >= 0, got '
                f'{prob!r}, {max_radius!r}'
            )
        self.prob, self.max_radius, self.per_date = float(prob), float(max_radius), per_date

    @staticmethod
    def _blur(date: np.ndarray, radius: Optional[float]) -> np.ndarray:
        if radius is None:
            return date
        img = Image.fromarray(np.ascontiguousarray(date))
        return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=radius)))

    def transform(self, results: dict) -> dict:
        """Blur the dates (same radius unless ``per_date``)."""
        check_8bit_rgb(self, split_dates(results['img'])[0])
        if random.random() >= self.prob:
            results['bitemporal_blur_radii'] = (None, None)
            return results
        date_a, date_b = split_dates(results['img'])
        r_a = random.uniform(0.0, self.max_radius)
        r_b = random.uniform(0.0, self.max_radius) if self.per_date else r_a
        results['img'] = np.concatenate([self._blur(date_a, r_a), self._blur(date_b, r_b)], axis=2)
        results['bitemporal_blur_radii'] = (r_a, r_b)
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(prob={self.prob}, max_radius={self.max_radius}, '
            f'per_date={self.per_date})'
        )
