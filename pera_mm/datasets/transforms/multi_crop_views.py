# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA multi-crop views: spatially aligned student/teacher pairs."""

import math
from numbers import Number
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...utils.errors import PeraConfigError

# Defaults from the released PerA code (method.md 1.1). ``blur_*`` and
# ``solarize_prob`` are off for PerA; DINO/DINOv2 baselines switch them on.
DEFAULT_STUDENT_COLOR = dict(
    jitter_prob=0.72,
    brightness=0.4,
    contrast=0.4,
    saturation=0.2,
    hue=0.1,
    gray_prob=0.08,
    blur_prob=0.0,
    blur_sigma=(0.1, 2.0),
    solarize_prob=0.0,
)
DEFAULT_TEACHER_COLOR = dict(
    jitter_prob=0.1,
    brightness=0.4,
    contrast=0.4,
    saturation=0.2,
    hue=0.1,
    gray_prob=0.0,
    blur_prob=0.0,
    blur_sigma=(0.1, 2.0),
    solarize_prob=0.0,
)

# A crop geometry: (top, left, height, width, hflip, vflip) in input pixels.
Geometry = Tuple[int, int, int, int, bool, bool]


def _check_positive_int(name: str, value, allow_zero: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = '>= 0' if allow_zero else '> 0'
        raise PeraConfigError(f'{name} must be an int {bound}, got {value!r}')
    return int(value)


def _check_prob(name: str, value) -> float:
    if not isinstance(value, Number) or not 0.0 <= value <= 1.0:
        raise PeraConfigError(f'{name} must be a probability in [0, 1], got {value!r}')
    return float(value)


def _check_pair(name: str, value, low: float, high: float, low_open: bool) -> Tuple[float, float]:
    """Check an increasing (a, b) pair inside (low, high] or [low, high]."""
    ok = (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, Number) for v in value)
    )
    if ok:
        a, b = float(value[0]), float(value[1])
        ok = (a > low if low_open else a >= low) and a <= b <= high
    if not ok:
        lo = '(' if low_open else '['
        raise PeraConfigError(
            f'{name} must be a pair (min, max) with min <= max '
            f'inside {lo}{low}, {high}], got {value!r}'
        )
    return a, b


def _check_color(name: str, cfg: Optional[dict], defaults: dict) -> dict:
    """Merge a colour config over its role's defaults and validate it."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise PeraConfigError(f'{name} must be a dict, got {type(cfg).__name__}')
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise PeraConfigError(
            f'{name} has unknown keys {unknown}; expected a subset of {sorted(defaults)}'
        )
    merged = {**defaults, **cfg}
    for key in ('jitter_prob', 'gray_prob', 'blur_prob', 'solarize_prob'):
        merged[key] = _check_prob(f'{name}.{key}', merged[key])
    for key in ('brightness', 'contrast', 'saturation'):
        value = merged[key]
        if not isinstance(value, Number) or value < 0:
            raise PeraConfigError(f'{name}.{key} must be a number >= 0, got {value!r}')
        merged[key] = float(value)
    hue = merged['hue']
    if not isinstance(hue, Number) or not 0 <= hue <= 0.5:
        raise PeraConfigError(f'{name}.hue must be in [0, 0.5], got {hue!r}')
    merged['hue'] = float(hue)
    merged['blur_sigma'] = _check_pair(
        f'{name}.blur_sigma', merged['blur_sigma'], 0.0, math.inf, True
    )
    return merged


def _grey(x: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B) of an RGB image."""
    return cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)


@TRANSFORMS.register_module()
class PerAMultiCropViews(BaseTransform):
    """Build PerA's multi-crop student/teacher view pairs from one image.

    Every pair shares ONE random-resized-crop box and the same horizontal and
    vertical flips, so each patch position shows the same ground in the
    student and the teacher view; only the photometric augmentation differs
    (colour jitter with its four ops in random order, then greyscale, and the
    optional blur/solarize used by DINO-style baselines). With
    ``spatial_alignment=False`` (ablation) the teacher draws its own crop and
    flips.

    The geometry is rendered once per aligned pair with OpenCV (area
    interpolation when shrinking, bicubic otherwise) and colour ops run
    vectorised in float32. All randomness comes from the global numpy RNG,
    so MMEngine's per-worker seeding makes runs reproducible.

    Required keys: ``img`` (H, W, 3) uint8 RGB.
    Modified keys: ``img`` becomes a list of uint8 (S, S, 3) RGB arrays,
    ``[student globals..., teacher globals..., student locals...,
    teacher locals...]``.
    Added keys: ``num_global_crops``, ``num_local_crops`` (ints).

    Args:
        global_crop_size (int): Side of the global views. Defaults to 448.
        local_crop_size (int): Side of the local views. Defaults to 96.
        num_global_crops (int): Number of global pairs. Defaults to 2.
        num_local_crops (int): Number of local pairs (may be 0). Defaults
            to 8.
        global_crop_scale (tuple): Area fraction range of global crops,
            inside (0, 1]. Defaults to (0.4, 1.0).
        local_crop_scale (tuple): Area fraction range of local crops.
            Defaults to (0.05, 0.4).
        ratio (tuple): Aspect-ratio (w / h) range of crop boxes. Defaults to
            (3/4, 4/3).
        hflip_prob (float): Horizontal flip probability per pair. Defaults
            to 0.5.
        vflip_prob (float): Vertical flip probability per pair. Defaults to
            0.5.
        student_color (dict, optional): Student photometric config, merged
            over the defaults: ``jitter_prob=0.72, brightness=0.4,
            contrast=0.4, saturation=0.2, hue=0.1, gray_prob=0.08``
            (plus ``blur_prob=0, blur_sigma=(0.1, 2.0), solarize_prob=0``).
        teacher_color (dict, optional): Teacher photometric config, merged
            over the defaults: ``jitter_prob=0.1``, same strengths,
            ``gray_prob=0``.
        spatial_alignment (bool): Share crop and flips inside each pair.
            Defaults to True.
    """

    def __init__(
        self,
        global_crop_size: int = 448,
        local_crop_size: int = 96,
        num_global_crops: int = 2,
        num_local_crops: int = 8,
        global_crop_scale: Tuple[float, float] = (0.4, 1.0),
        local_crop_scale: Tuple[float, float] = (0.05, 0.4),
        ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        hflip_prob: float = 0.5,
        vflip_prob: float = 0.5,
        student_color: Optional[dict] = None,
        teacher_color: Optional[dict] = None,
        spatial_alignment: bool = True,
    ) -> None:
        self.global_crop_size = _check_positive_int('global_crop_size', global_crop_size)
        self.local_crop_size = _check_positive_int('local_crop_size', local_crop_size)
        self.num_global_crops = _check_positive_int('num_global_crops', num_global_crops)
        self.num_local_crops = _check_positive_int(
            'num_local_crops', num_local_crops, allow_zero=True
        )
        self.global_crop_scale = _check_pair('global_crop_scale', global_crop_scale, 0.0, 1.0, True)
        self.local_crop_scale = _check_pair('local_crop_scale', local_crop_scale, 0.0, 1.0, True)
        self.ratio = _check_pair('ratio', ratio, 0.0, math.inf, True)
        self.hflip_prob = _check_prob('hflip_prob', hflip_prob)
        self.vflip_prob = _check_prob('vflip_prob', vflip_prob)
        self.student_color = _check_color('student_color', student_color, DEFAULT_STUDENT_COLOR)
        self.teacher_color = _check_color('teacher_color', teacher_color, DEFAULT_TEACHER_COLOR)
        if not isinstance(spatial_alignment, bool):
            raise PeraConfigError(f'spatial_alignment must be a bool, got {spatial_alignment!r}')
        self.spatial_alignment = spatial_alignment
        self._log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))

    # ------------------------------------------------------------- geometry
    def _sample_geometry(self, height: int, width: int, scale: Tuple[float, float]) -> Geometry:
        """Draw a random-resized-crop box (Inception-style) and two flips."""
        area = height * width
        # Ten candidate boxes drawn at once; keep the first that fits.
        targets = area * np.random.uniform(scale[0], scale[1], size=10)
        aspects = np.exp(np.random.uniform(*self._log_ratio, size=10))
        ws = np.rint(np.sqrt(targets * aspects)).astype(np.int64)
        hs = np.rint(np.sqrt(targets / aspects)).astype(np.int64)
        fits = np.flatnonzero((ws > 0) & (ws <= width) & (hs > 0) & (hs <= height))
        if fits.size:
            h, w = int(hs[fits[0]]), int(ws[fits[0]])
            top = int(np.random.randint(0, height - h + 1))
            left = int(np.random.randint(0, width - w + 1))
        else:
            # Fallback: the largest centred box with an allowed aspect ratio.
            in_ratio = width / height
            if in_ratio < self.ratio[0]:
                w, h = width, max(1, min(height, round(width / self.ratio[0])))
            elif in_ratio > self.ratio[1]:
                h, w = height, max(1, min(width, round(height * self.ratio[1])))
            else:
                h, w = height, width
            top, left = (height - h) // 2, (width - w) // 2
        hflip = bool(np.random.rand() < self.hflip_prob)
        vflip = bool(np.random.rand() < self.vflip_prob)
        return top, left, h, w, hflip, vflip

    @staticmethod
    def _render(img: np.ndarray, geometry: Geometry, size: int) -> np.ndarray:
        """Crop, resize to (size, size) and flip."""
        top, left, h, w, hflip, vflip = geometry
        crop = img[top : top + h, left : left + w]
        interp = cv2.INTER_AREA if (h >= size and w >= size) else cv2.INTER_CUBIC
        out = cv2.resize(crop, (size, size), interpolation=interp)
        if hflip and vflip:
            out = cv2.flip(out, -1)
        elif hflip:
            out = cv2.flip(out, 1)  # around the vertical axis
        elif vflip:
            out = cv2.flip(out, 0)  # around the horizontal axis
        return out

    # ------------------------------------------------------------ photometry
    @staticmethod
    def _jitter(x: np.ndarray, cfg: dict) -> np.ndarray:
        """Brightness, contrast, saturation and hue (float32 0-255) in random
        order, each clipped to the valid range like torchvision's
        ``ColorJitter``."""
        for op in np.random.permutation(4):
            if op == 0 and cfg['brightness'] > 0:
                b = cfg['brightness']
                f = np.random.uniform(max(0.0, 1 - b), 1 + b)
                x *= f
                np.minimum(x, 255.0, out=x)
            elif op == 1 and cfg['contrast'] > 0:
                c = cfg['contrast']
                f = np.random.uniform(max(0.0, 1 - c), 1 + c)
                mean = float(_grey(x).mean())
                x *= f
                x += (1.0 - f) * mean
                np.clip(x, 0.0, 255.0, out=x)
            elif op == 2 and cfg['saturation'] > 0:
                s = cfg['saturation']
                f = np.random.uniform(max(0.0, 1 - s), 1 + s)
                grey = _grey(x)[..., None]
                x *= f
                x += (1.0 - f) * grey
                np.clip(x, 0.0, 255.0, out=x)
            elif op == 3 and cfg['hue'] > 0:
                shift = np.random.uniform(-cfg['hue'], cfg['hue']) * 360.0
                hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
                hue = hsv[..., 0]
                hue += shift
                np.mod(hue, 360.0, out=hue)
                x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
                np.clip(x, 0.0, 255.0, out=x)
        return x

    def _photometric(self, view: np.ndarray, cfg: dict) -> np.ndarray:
        """Apply one role's colour augmentation; never modifies ``view``.

        Returns ``view`` itself when no op fired.
        """
        x = None  # float32 working copy, created lazily
        if cfg['jitter_prob'] > 0 and np.random.rand() < cfg['jitter_prob']:
            x = self._jitter(view.astype(np.float32), cfg)
        if cfg['gray_prob'] > 0 and np.random.rand() < cfg['gray_prob']:
            src = view if x is None else x
            x = cv2.cvtColor(_grey(src), cv2.COLOR_GRAY2RGB)
            if x.dtype == np.uint8:
                view, x = x, None
        if x is not None:
            view = (x + 0.5).astype(np.uint8)  # x is clipped to [0, 255]
        if cfg['blur_prob'] > 0 and np.random.rand() < cfg['blur_prob']:
            sigma = np.random.uniform(*cfg['blur_sigma'])
            view = cv2.GaussianBlur(view, (0, 0), sigmaX=sigma)
        if cfg['solarize_prob'] > 0 and np.random.rand() < cfg['solarize_prob']:
            view = np.where(view >= 128, 255 - view, view)
        return view

    # ------------------------------------------------------------- transform
    def _pairs(
        self, img: np.ndarray, num: int, size: int, scale: Tuple[float, float]
    ) -> Tuple[List, List]:
        """Make ``num`` (student, teacher) view pairs of side ``size``."""
        height, width = img.shape[:2]
        students, teachers = [], []
        for _ in range(num):
            geometry = self._sample_geometry(height, width, scale)
            base = self._render(img, geometry, size)
            if self.spatial_alignment:
                teacher_base = base
            else:
                teacher_geometry = self._sample_geometry(height, width, scale)
                teacher_base = self._render(img, teacher_geometry, size)
            student = self._photometric(base, self.student_color)
            teacher = self._photometric(teacher_base, self.teacher_color)
            if teacher is student:  # both untouched: keep arrays separate
                teacher = teacher.copy()
            students.append(student)
            teachers.append(teacher)
        return students, teachers

    def transform(self, results: dict) -> dict:
        """Replace ``results['img']`` by the list of student/teacher views."""
        img = results.get('img')
        if not (
            isinstance(img, np.ndarray)
            and img.ndim == 3
            and img.shape[2] == 3
            and img.dtype == np.uint8
            and img.shape[0] > 0
            and img.shape[1] > 0
        ):
            desc = (
                f'{type(img).__name__} {getattr(img, "shape", "")} {getattr(img, "dtype", "")}'
            ).strip()
            raise PeraConfigError(
                "PerAMultiCropViews needs results['img'] as an "
                f'(H, W, 3) uint8 RGB array, got {desc}'
            )
        g_student, g_teacher = self._pairs(
            img, self.num_global_crops, self.global_crop_size, self.global_crop_scale
        )
        l_student, l_teacher = self._pairs(
            img, self.num_local_crops, self.local_crop_size, self.local_crop_scale
        )
        results['img'] = g_student + g_teacher + l_student + l_teacher
        results['num_global_crops'] = self.num_global_crops
        results['num_local_crops'] = self.num_local_crops
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}('
            f'global_crop_size={self.global_crop_size}, '
            f'local_crop_size={self.local_crop_size}, '
            f'num_global_crops={self.num_global_crops}, '
            f'num_local_crops={self.num_local_crops}, '
            f'global_crop_scale={self.global_crop_scale}, '
            f'local_crop_scale={self.local_crop_scale}, '
            f'ratio={self.ratio}, hflip_prob={self.hflip_prob}, '
            f'vflip_prob={self.vflip_prob}, '
            f'student_color={self.student_color}, '
            f'teacher_color={self.teacher_color}, '
            f'spatial_alignment={self.spatial_alignment})'
        )
