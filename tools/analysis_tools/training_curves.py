#!/usr/bin/env python
"""Training curves of a run: the logged losses, PerA's collapse-monitor statistics, the rest.

    python tools/analysis_tools/training_curves.py WORK_DIR_OR_SCALARS_JSON [--out FILE.png]

Reads ``<work_dir>/<timestamp>/vis_data/scalars.json`` (every run of a resumed
work dir, oldest first). Panels: ``loss*``; ``monitor_*`` (teacher cls cosine and
effective rank, with CollapseMonitorHook's warning limits dashed; target
entropies); ``--keys`` of the rest (default lr, grad_norm,
teacher_temp, teacher_momentum); validation metrics when there are any.
"""

import argparse
import importlib.util
import json
import os.path as osp
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from tqdm import tqdm  # noqa: E402

from pera_mm.utils.cli import PeraCliErrors  # noqa: E402
from pera_mm.utils.errors import PeraDataError  # noqa: E402
from pera_mm.visualization import (  # noqa: E402
    collapse_thresholds,
    curve_groups,
    figure_panels,
    find_scalars_files,
    read_scalar_rows,
    train_curves,
    val_curves,
)
from pera_mm.visualization.figures import save_curves_figure  # noqa: E402

OTHER_KEYS = ('lr', 'grad_norm', 'teacher_temp', 'teacher_momentum')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('source', help='work dir of tools/train.py, or a scalars.json file')
    parser.add_argument(
        '--keys', nargs='+', default=list(OTHER_KEYS), help='other training keys to plot'
    )
    parser.add_argument('--out', help='output PNG (default: <work dir>/training_curves.png)')
    parser.add_argument('--json', help='also write the plotted series here')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    files = find_scalars_files(args.source)
    rows = read_scalar_rows(tqdm(files, desc='scalars.json', unit='file'))
    train, val = train_curves(rows), val_curves(rows)
    groups = curve_groups(train)
    if not groups['losses']:
        raise PeraDataError(f'{args.source}: no loss* key in the training rows')
    panels = {
        'losses': {k: train[k] for k in groups['losses']},
        'collapse monitor': {k: train[k] for k in groups['monitor']},
        'schedules': {k: train[k] for k in args.keys if k in train},
        'validation': val,
    }
    source = Path(args.source)
    out = Path(args.out or (source if source.is_dir() else source.parent) / 'training_curves.png')
    last = int(max(train[groups['losses'][0]][0]))
    title = f'{source}: {len(rows)} logged rows, last logged iteration {last}'
    save_curves_figure(out, figure_panels(panels), title, collapse_thresholds(files))
    if args.json:
        series = {
            name: {k: dict(steps=s.tolist(), values=v.tolist()) for k, (s, v) in curves.items()}
            for name, curves in panels.items()
        }
        Path(args.json).write_text(json.dumps(series, indent=1))
    print(f'plotted {sum(map(len, panels.values()))} curve(s) to {out}')


if __name__ == '__main__':
    PeraCliErrors.run(main, tool='training_curves')
