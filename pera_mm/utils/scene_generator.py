# Copyright (c) pera-mm contributors. All rights reserved.
"""Procedural remote-sensing-like RGB tiles for demos and smoke tests.

The tiles imitate nadir aerial imagery: field patchworks with crop rows and
hedges, road networks, buildings with cast shadows, water bodies with
shorelines, tree clusters and bare soil. Each tile has a dominant scene type
(its sub-folder) plus a random mix of other land covers, so tiles differ
semantically and self-supervised methods have something to learn. Pure
numpy + OpenCV, deterministic for a given seed, no data shipped.
"""

import json
import math
import os
from pathlib import Path
from typing import Callable, Dict, List, Union

import cv2
import numpy as np

SCENE_TYPES = ('farmland', 'residential', 'forest', 'water', 'bare_land')

# RGB colours of land covers (0-255).
_CROPS = np.array(
    [
        [92, 122, 58],
        [120, 140, 70],
        [150, 150, 80],
        [186, 170, 110],
        [140, 110, 80],
        [72, 104, 52],
        [165, 150, 95],
        [110, 130, 90],
    ],
    np.float32,
)
_ROOFS = np.array(
    [
        [170, 80, 60],
        [150, 150, 150],
        [215, 210, 200],
        [110, 110, 120],
        [190, 120, 80],
        [90, 100, 130],
    ],
    np.float32,
)
_GRASS = np.array([100, 128, 70], np.float32)
_SOIL = np.array([150, 125, 95], np.float32)
_ROAD = np.array([128, 126, 122], np.float32)
_WATER = np.array([40, 70, 80], np.float32)
_SAND = np.array([185, 175, 145], np.float32)
_TREE = np.array([50, 78, 42], np.float32)

_META_FILE = 'demo_meta.json'


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1], float32 (size, size)."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for i in range(octaves):
        n = cells * 2**i + 1
        grid = rng.random((n, n), dtype=np.float32)
        out += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
    out /= total
    out -= out.min()
    out /= max(float(out.max()), 1e-6)
    return out


def _rotated_coords(size: int, theta: float):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c, s = math.cos(theta), math.sin(theta)
    return xx * c + yy * s, -xx * s + yy * c


def _cuts(rng, low: float, high: float, mean: float) -> np.ndarray:
    """Random increasing cut positions covering [low, high]."""
    n = int((high - low) / mean) + 3
    steps = rng.uniform(0.5, 1.5, n) * mean
    return low + rng.uniform(0, mean) + np.cumsum(steps) - steps[0]


def _fields(rng, canvas: np.ndarray, scale: float, region: np.ndarray) -> None:
    """Patchwork of parcels with crop rows and darker boundaries."""
    size = canvas.shape[0]
    u, v = _rotated_coords(size, rng.uniform(0, math.pi))
    cu = _cuts(rng, float(u.min()), float(u.max()), rng.uniform(25, 60) * scale)
    cv = _cuts(rng, float(v.min()), float(v.max()), rng.uniform(40, 90) * scale)
    iu, iv = np.searchsorted(cu, u), np.searchsorted(cv, v)
    pid = iu * (len(cv) + 1) + iv
    num = (len(cu) + 1) * (len(cv) + 1)
    colour = _CROPS[rng.integers(0, len(_CROPS), num)]
    colour *= rng.uniform(0.85, 1.15, (num, 1)).astype(np.float32)
    period = rng.uniform(2.5, 6.0, num).astype(np.float32) * scale
    along_u = rng.random(num) < 0.5
    amp = rng.uniform(0.0, 0.18, num).astype(np.float32)
    coord = np.where(along_u[pid], u, v)
    rows = 1.0 + amp[pid] * np.sin(2 * np.pi * coord / period[pid])
    fields = colour[pid] * rows[..., None]
    fields *= (0.9 + 0.2 * _smooth_noise(rng, size, 4))[..., None]
    pid_f = pid.astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    edges = cv2.dilate(pid_f, kernel) != cv2.erode(pid_f, kernel)
    fields[edges] = fields[edges] * 0.7
    canvas[region] = fields[region]


def _roads(rng, canvas: np.ndarray, scale: float, count: int) -> np.ndarray:
    """Meandering roads edge to edge; returns their mask."""
    size = canvas.shape[0]
    mask = np.zeros((size, size), np.uint8)
    for _ in range(count):
        a, b = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        if rng.random() < 0.5:  # run left -> right, else top -> bottom
            pts = [(0, a[0]), (size - 1, b[0])]
        else:
            pts = [(a[0], 0), (b[0], size - 1)]
        (x0, y0), (x1, y1) = pts
        t = np.linspace(0, 1, 12)[:, None]
        line = (1 - t) * np.array([x0, y0]) + t * np.array([x1, y1])
        normal = np.array([y0 - y1, x1 - x0], np.float64)
        normal /= np.linalg.norm(normal) + 1e-6
        wiggle = np.cumsum(rng.normal(0, 4 * scale, 12))
        line += wiggle[:, None] * normal
        width = max(2, int(rng.uniform(3, 7) * scale))
        cv2.polylines(mask, [line.astype(np.int32)], False, 1, width, cv2.LINE_AA)
    road = mask > 0
    canvas[road] = _ROAD * rng.uniform(0.85, 1.2)
    return road


def _box(cx, cy, w, h, angle):
    return cv2.boxPoints(((float(cx), float(cy)), (float(w), float(h)), float(angle))).astype(
        np.int32
    )


def _buildings(
    rng, canvas: np.ndarray, scale: float, count: int, free: np.ndarray, sun: np.ndarray
) -> None:
    """Rectangular roofs (some gabled) with cast shadows, on free ground."""
    ys, xs = np.nonzero(free)
    if len(xs) == 0:
        return
    angle = rng.uniform(0, 90)
    for i in rng.integers(0, len(xs), count):
        cx, cy = xs[i], ys[i]
        w, h = rng.uniform(6, 18, 2) * scale
        a = angle + rng.normal(0, 4)
        height = rng.uniform(2, 6) * scale
        shadow = _box(cx + sun[0] * height, cy + sun[1] * height, w, h, a)
        cv2.fillPoly(canvas, [shadow], (35, 38, 45))
        roof = _ROOFS[rng.integers(0, len(_ROOFS))] * rng.uniform(0.85, 1.1)
        cv2.fillPoly(canvas, [_box(cx, cy, w, h, a)], roof.tolist())
        if rng.random() < 0.6:  # gabled: one half of the roof is darker
            rad = math.radians(a)
            off = np.array([math.cos(rad), math.sin(rad)]) * w / 4
            cv2.fillPoly(
                canvas, [_box(cx + off[0], cy + off[1], w / 2, h, a)], (roof * 0.78).tolist()
            )


def _trees(
    rng, canvas: np.ndarray, scale: float, count: int, where: np.ndarray, sun: np.ndarray
) -> None:
    """Round crowns with a lit side and a cast shadow."""
    ys, xs = np.nonzero(where)
    if len(xs) == 0 or count <= 0:
        return
    idx = rng.integers(0, len(xs), count)
    radii = rng.uniform(2.0, 6.0, count) * scale
    tones = rng.uniform(0.75, 1.25, count)
    for x, y, r, tone in zip(xs[idx], ys[idx], radii, tones):
        ri = max(1, int(r))
        cv2.circle(
            canvas, (int(x + sun[0] * r), int(y + sun[1] * r)), ri, (28, 36, 26), -1, cv2.LINE_AA
        )
        cv2.circle(canvas, (int(x), int(y)), ri, (_TREE * tone).tolist(), -1, cv2.LINE_AA)
        hl = max(1, ri // 2)
        cv2.circle(
            canvas,
            (int(x - sun[0] * r / 3), int(y - sun[1] * r / 3)),
            hl,
            (_TREE * tone * 1.3).tolist(),
            -1,
            cv2.LINE_AA,
        )


def _water(rng, canvas: np.ndarray, scale: float, fraction: float) -> np.ndarray:
    """A lake (noise blob) or a river, with a sandy shore; returns mask."""
    size = canvas.shape[0]
    if rng.random() < 0.6:
        noise = _smooth_noise(rng, size, 2, octaves=3)
        mask = noise > np.quantile(noise, 1.0 - fraction)
    else:
        m = np.zeros((size, size), np.uint8)
        t = np.linspace(0, 1, 16)
        x = size * (
            rng.uniform(0.2, 0.8)
            + 0.25 * np.sin(2 * np.pi * (t * rng.uniform(0.5, 1.5) + rng.random()))
        )
        pts = np.stack([x, t * (size - 1)], 1).astype(np.int32)
        if rng.random() < 0.5:
            pts = pts[:, ::-1].copy()
        cv2.polylines(m, [pts], False, 1, max(3, int(size * fraction * 0.5)), cv2.LINE_AA)
        mask = m > 0
    shore = (
        cv2.dilate(
            mask.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=max(1, int(2 * scale))
        )
        > 0
    )
    canvas[shore & ~mask] = _SAND * rng.uniform(0.85, 1.05)
    depth = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 4 * scale)
    colour = _WATER * rng.uniform(0.8, 1.3, 3).astype(np.float32)
    water = colour * (1.25 - 0.35 * depth)[..., None]
    canvas[mask] = water[mask]
    return mask


def _ground(rng, size: int, base: np.ndarray, other: np.ndarray, cells: int) -> np.ndarray:
    """Blend of two ground colours by smooth noise, with fine grain."""
    mix = _smooth_noise(rng, size, cells)[..., None]
    canvas = base * (1 - mix) + other * mix
    canvas *= rng.normal(1.0, 0.04, (size, size, 1)).astype(np.float32)
    return canvas.astype(np.float32)


def _render_tile(rng: np.random.Generator, scene: str, size: int) -> np.ndarray:
    """One RGB uint8 tile of the given dominant scene type."""
    scale = size / 192 * rng.uniform(0.7, 1.4)  # random ground resolution
    sun = rng.normal(0, 1, 2)
    sun = sun / (np.linalg.norm(sun) + 1e-6)
    everywhere = np.ones((size, size), bool)

    if scene == 'bare_land':
        canvas = _ground(rng, size, _SOIL * rng.uniform(0.8, 1.2), _SAND * rng.uniform(0.8, 1.1), 3)
    elif scene == 'forest':
        canvas = _ground(rng, size, _TREE * 0.8, _GRASS * 0.9, 4)
    else:
        canvas = _ground(
            rng, size, _GRASS * rng.uniform(0.85, 1.15), _SOIL * rng.uniform(0.85, 1.1), 3
        )

    if scene == 'farmland':
        _fields(rng, canvas, scale, everywhere)
    elif scene in ('water', 'bare_land') and rng.random() < 0.4:
        region = _smooth_noise(rng, size, 2) > 0.55
        _fields(rng, canvas, scale, region)

    if scene == 'water':
        water = _water(rng, canvas, scale, rng.uniform(0.3, 0.6))
    elif rng.random() < 0.25:
        water = _water(rng, canvas, scale, rng.uniform(0.05, 0.15))
    else:
        water = np.zeros((size, size), bool)

    road_count = {'residential': rng.integers(2, 5), 'farmland': rng.integers(0, 3)}.get(
        scene, rng.integers(0, 2)
    )
    road = _roads(rng, canvas, scale, int(road_count))
    free = ~(water | road)

    if scene == 'residential':
        _buildings(rng, canvas, scale, int(rng.integers(25, 60) * scale), free, sun)
    elif rng.random() < 0.3:
        _buildings(rng, canvas, scale, int(rng.integers(1, 6)), free, sun)

    if scene == 'forest':
        clusters = _smooth_noise(rng, size, 3) > rng.uniform(0.1, 0.35)
        _trees(rng, canvas, scale, int(900 / scale), clusters & free, sun)
    else:
        count = {'residential': 40, 'water': 60, 'farmland': 25}.get(scene, 8)
        clusters = _smooth_noise(rng, size, 4) > 0.6
        _trees(rng, canvas, scale, int(count * rng.uniform(0.3, 1.5)), clusters & free, sun)

    # Sensor look: colour balance, haze, noise and a slight optical blur.
    canvas *= rng.uniform(0.9, 1.1, 3).astype(np.float32)
    haze = rng.uniform(0.0, 0.15)
    canvas = canvas * (1 - haze) + haze * np.float32(200.0)
    canvas += rng.normal(0, 2.5, canvas.shape).astype(np.float32)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def demo_tile_paths(out_dir: Union[str, Path], num_images: int) -> List[Path]:
    """Where :func:`generate_demo_dataset` writes each tile."""
    out_dir = Path(out_dir)
    return [
        out_dir
        / SCENE_TYPES[i % len(SCENE_TYPES)]
        / f'{SCENE_TYPES[i % len(SCENE_TYPES)]}_{i:05d}.jpg'
        for i in range(num_images)
    ]


def generate_demo_dataset(
    out_dir: Union[str, Path],
    num_images: int = 256,
    size: int = 192,
    seed: int = 0,
    log: Callable[[str], None] = None,
) -> List[Path]:
    """Write ``num_images`` procedural RGB JPEG tiles under ``out_dir``.

    Tiles go to ``out_dir/<scene>/<scene>_<index>.jpg`` for the scene types
    in :data:`SCENE_TYPES` (round robin). Tile ``i`` depends only on
    ``(seed, i, size)``, so reruns give identical bytes. Idempotent: when the
    folder already holds these tiles for the same arguments (recorded in
    ``demo_meta.json``), nothing is written.

    Args:
        out_dir (str | Path): Output folder (created if needed).
        num_images (int): Number of tiles. Defaults to 256.
        size (int): Tile side in pixels. Defaults to 192.
        seed (int): Random seed. Defaults to 0.
        log (callable, optional): Receives one progress message.

    Returns:
        list[Path]: The tile paths, in index order.
    """
    for name, value, low in (('num_images', num_images, 1), ('size', size, 32), ('seed', seed, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
    out_dir = Path(out_dir)
    paths = demo_tile_paths(out_dir, num_images)
    meta: Dict = dict(num_images=int(num_images), size=int(size), seed=int(seed))
    meta_file = out_dir / _META_FILE
    if meta_file.is_file() and all(p.is_file() for p in paths):
        try:
            if json.loads(meta_file.read_text()) == meta:
                if log:
                    log(f'{out_dir} already holds {num_images} demo tiles')
                return paths
        except ValueError:
            pass
    for i, path in enumerate(paths):
        rng = np.random.default_rng([int(seed), i])
        scene = SCENE_TYPES[i % len(SCENE_TYPES)]
        tile = _render_tile(rng, scene, int(size))
        ok, data = cv2.imencode(
            '.jpg', cv2.cvtColor(tile, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]
        )
        if not ok:
            raise RuntimeError(f'JPEG encoding failed for {path}')
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix('.jpg.tmp')
        tmp.write_bytes(data.tobytes())
        os.replace(tmp, path)
    meta_file.write_text(json.dumps(meta))
    if log:
        log(f'wrote {num_images} demo tiles ({size}x{size}) to {out_dir}')
    return paths
