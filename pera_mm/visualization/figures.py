# Copyright (c) pera-mm contributors. All rights reserved.
"""PNG figures of the analysis tools (matplotlib, headless Agg backend)."""

import math
from pathlib import Path
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

#: colour map of attention overlays
ATTENTION_CMAP = 'inferno'


def overlay_heatmap(img: np.ndarray, heat: np.ndarray, alpha: float = 0.6, cmap=ATTENTION_CMAP):
    """Blend a patch-grid heat map (h, w) over an (H, W, 3) uint8 image.

    The map is min-max scaled to [0, 1], each patch covers its H/h x W/w pixels,
    and a pixel is ``(1 - alpha) * image + alpha * colour``.

    Returns:
        np.ndarray: (H, W, 3) uint8.
    """
    H, W = img.shape[:2]
    h, w = heat.shape
    heat = heat.astype(np.float64)
    span = heat.max() - heat.min()
    scaled = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
    scaled = np.repeat(np.repeat(scaled, H // h, axis=0), W // w, axis=1)
    colour = plt.get_cmap(cmap)(scaled)[..., :3] * 255.0
    out = (1 - alpha) * img.astype(np.float64) + alpha * colour
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _grid(n: int, max_cols: int, size=(2.4, 2.6)):
    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis('off')
    return fig, list(axes.flat)


def save_attention_figure(path, img: np.ndarray, maps: np.ndarray, title: str) -> Path:
    """The image, the head-mean map and each head's cls -> patch map over it."""
    panels = [('image', img), ('mean of heads', overlay_heatmap(img, maps.mean(0)))]
    panels += [(f'head {h}', overlay_heatmap(img, m)) for h, m in enumerate(maps)]
    fig, axes = _grid(len(panels), 6)
    for ax, (name, panel) in zip(axes, panels):
        ax.imshow(panel)
        ax.set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def save_reconstruction_figure(path, rows: List[Dict], title: str) -> Path:
    """One row per (image, mask ratios): masked input | prediction | target."""
    fig, axes = plt.subplots(len(rows), 3, figsize=(7.5, 2.7 * len(rows)), squeeze=False)
    for row, (a_in, a_pred, a_tgt) in zip(rows, axes):
        ratio_s, ratio_l, _ = row['ratios']
        for ax, key, name in (
            (a_in, 'masked', f'student input (s={ratio_s:g})'),
            (a_pred, 'prediction', f'prediction at l={ratio_l:g} (mse {row["mse"]:.3g})'),
            (a_tgt, 'target', 'target'),
        ):
            ax.imshow(np.clip(np.round(row[key]), 0, 255).astype(np.uint8))
            ax.set_title(name, fontsize=9)
            ax.axis('off')
        a_in.text(
            -0.05,
            0.5,
            row['name'],
            transform=a_in.transAxes,
            rotation=90,
            ha='right',
            va='center',
            fontsize=8,
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def save_embedding_figure(
    path, xy: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str
) -> Path:
    """Scatter of a 2-D embedding, one colour per class, legend outside the axes."""
    fig, ax = plt.subplots(figsize=(9, 6.5))
    cmap = plt.get_cmap('tab20' if len(classes) <= 20 else 'gist_ncar')
    for label, name in enumerate(classes):
        sel = labels == label
        colour = cmap(label / max(len(classes) - 1, 1)) if len(classes) > 20 else cmap(label)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=14, color=colour, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.0, 0.5), ncol=1 + len(classes) // 26)
    fig.tight_layout()
    return _save(fig, path)


def shared_bins(arrays, bins: int = 60) -> np.ndarray:
    """Common histogram edges of several arrays; a near-constant set gets a small width."""
    lo = min(float(np.min(a)) for a in arrays)
    hi = max(float(np.max(a)) for a in arrays)
    span = max(hi - lo, 1e-6 * max(abs(hi), abs(lo), 1.0))
    return np.linspace(lo, lo + span, bins + 1)


def save_histogram_figure(path, sets: Dict[str, Dict], title: str) -> Path:
    """Histograms of feature values, norms and pairwise cosines, overlaid per feature set.

    Args:
        sets: ``{name: dict(values=..., norms=..., cosines=..., stats=...)}``.
    """
    fig, axes = plt.subplots(1, 4, figsize=(18, 4), gridspec_kw=dict(width_ratios=[1, 1, 1, 1.1]))
    for ax, key, name in zip(
        axes,
        ('values', 'norms', 'cosines'),
        ('feature values', 'L2 norm per image', 'pairwise cosine'),
    ):
        edges = shared_bins([data[key] for data in sets.values()])
        for set_name, data in sets.items():
            ax.hist(data[key], bins=edges, alpha=0.55, label=set_name)
        ax.set_title(name, fontsize=10)
        ax.set_ylabel('count')
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.legend(fontsize=8)
    keys = list(next(iter(sets.values()))['stats'])
    lines = ['statistic'.ljust(16) + ''.join(n[:18].rjust(20) for n in sets)]
    for key in keys:
        cells = ''.join(f'{data["stats"][key]:20.4g}' for data in sets.values())
        lines.append(key.ljust(16) + cells)
    axes[3].axis('off')
    axes[3].text(0, 0.5, '\n'.join(lines), family='monospace', fontsize=8, va='center')
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def save_curves_figure(path, panels: Dict[str, Dict], title: str, limits=None) -> Path:
    """One axis per panel (four to a row), one line per key.

    Args:
        panels: ``{panel title: {key: (steps, values)}}``; empty panels are left out.
        limits: ``{panel title: value}`` drawn as a dashed warning line.
    """
    limits = limits or {}
    panels = {name: curves for name, curves in panels.items() if curves}
    fig, axes = _grid(len(panels), 4, size=(4.5, 3.4))
    for ax, (name, curves) in zip(axes, panels.items()):
        ax.axis('on')
        for key, (steps, values) in curves.items():
            ax.plot(steps, values, marker='o' if len(steps) < 30 else None, ms=3, label=key)
        if name in limits:
            ax.axhline(limits[name], color='red', ls='--', lw=1, label=f'warning {limits[name]:g}')
        ax.set_title(name, fontsize=10)
        ax.set_xlabel('step' if name.endswith('(validation)') else 'iteration', fontsize=8)
        ax.tick_params(labelsize=8)
        if len(curves) > 1 or name in limits:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)
