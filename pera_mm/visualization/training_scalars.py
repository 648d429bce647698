# Copyright (c) pera-mm contributors. All rights reserved.
"""The scalars a run logs (``<work_dir>/<timestamp>/vis_data/scalars.json``) as curves.

MMEngine's ``LocalVisBackend`` writes one JSON object per line: training rows
carry ``iter`` (global, 1-based) and ``step`` next to ``lr``, ``loss*``, PerA's
``monitor_*`` collapse statistics and timings; validation rows carry ``step`` and
the metrics only. A resumed run writes a new timestamp folder; the folders are
read in name (time) order and a later row replaces an earlier one of the same step.
"""

import json
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from ..utils.errors import PeraDataError, PeraFileNotFoundError

#: training-row keys that are bookkeeping, not curves
_NOT_CURVES = ('iter', 'step', 'epoch', 'time', 'data_time')


def find_scalars_files(path) -> List[Path]:
    """``scalars.json`` files of a work dir (every run, oldest first), or the file itself."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PeraFileNotFoundError(f'{path}: no such work dir or scalars.json file')
    files = sorted(path.glob('*/vis_data/scalars.json')) or sorted(
        p for p in (path / 'vis_data' / 'scalars.json', path / 'scalars.json') if p.is_file()
    )
    if not files:
        raise PeraFileNotFoundError(
            f'{path}: no <timestamp>/vis_data/scalars.json in it (is it a work dir of '
            f'tools/train.py with the LocalVisBackend?)'
        )
    return files


def read_scalar_rows(files) -> List[dict]:
    """Every logged row of ``files``, in order."""
    rows = []
    for file in files:
        for number, line in enumerate(Path(file).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PeraDataError(f'{file}:{number}: not a JSON line ({e.msg})') from None
            if not isinstance(row, dict) or 'step' not in row:
                raise PeraDataError(f'{file}:{number}: expected a JSON object with a "step"')
            rows.append(row)
    if not rows:
        raise PeraDataError(f'{", ".join(map(str, files))}: no logged rows')
    return rows


def _series(rows: List[dict], step_key: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    by_key: Dict[str, 'OrderedDict'] = {}
    for row in rows:
        for key, value in row.items():
            if key in _NOT_CURVES or not isinstance(value, (int, float)):
                continue
            by_key.setdefault(key, OrderedDict())[row[step_key]] = float(value)
    return {
        key: (np.array(sorted(points)), np.array([points[s] for s in sorted(points)]))
        for key, points in by_key.items()
    }


def train_curves(rows: List[dict]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{key: (iterations, values)}`` of the training rows (those with ``iter``)."""
    return _series([r for r in rows if 'iter' in r], 'iter')


def val_curves(rows: List[dict]) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{metric: (steps, values)}`` of the validation rows (no ``iter``; step = epoch or iter)."""
    return _series([r for r in rows if 'iter' not in r], 'step')


def curve_groups(curves: Dict) -> Dict[str, List[str]]:
    """Keys sorted into the figure's panels: losses, collapse monitor, the rest."""
    groups = dict(losses=[], monitor=[], other=[])
    for key in sorted(curves):
        name = key.rsplit('/', 1)[-1]
        group = (
            'losses'
            if name.startswith('loss')
            else 'monitor'
            if name.startswith('monitor_')
            else 'other'
        )
        groups[group].append(key)
    return groups


def figure_panels(panels: Dict[str, Dict]) -> Dict[str, Dict]:
    """The plotted axes: losses together; the collapse monitor split by scale (cosine in
    [-1, 1], effective rank, entropies); every other key and validation metric alone."""
    out = {'losses': panels.get('losses', {})}
    monitor = panels.get('collapse monitor', {})
    for title, test in (
        ('teacher cls cosine', lambda k: k.endswith('cls_cosine')),
        ('teacher cls effective rank', lambda k: k.endswith('cls_erank')),
        ('target entropies', lambda k: 'entropy' in k),
    ):
        out[title] = {k: v for k, v in monitor.items() if test(k)}
    known = {k for curves in out.values() for k in curves}
    out['other monitor'] = {k: v for k, v in monitor.items() if k not in known}
    for group in ('schedules', 'validation'):
        for key, curve in panels.get(group, {}).items():
            out[f'{key} (validation)' if group == 'validation' else key] = {key: curve}
    return {title: curves for title, curves in out.items() if curves}


def collapse_thresholds(files) -> Dict[str, float]:
    """``CollapseMonitorHook``'s warning limits for the run (the run's saved config
    ``collapse_monitor`` over the hook's defaults), drawn as dashed lines."""
    from mmengine.config import Config

    from ..engine.hooks.collapse_monitor_hook import CollapseMonitorHook

    limits = dict(CollapseMonitorHook.defaults)
    config = Path(files[-1]).parent / 'config.py'
    if config.is_file():
        try:
            limits.update(Config.fromfile(str(config)).get('collapse_monitor') or {})
        except Exception:  # noqa: BLE001  (an unreadable saved config keeps the defaults)
            pass
    return {
        'teacher cls cosine': float(limits['max_cls_cosine']),
        'teacher cls effective rank': float(limits['min_cls_erank']),
    }
