#!/usr/bin/env python
"""Histograms comparing the encoder features of two checkpoints (or student vs teacher).

    python tools/analysis_tools/feature_histograms.py CONFIG CKPT_A [CKPT_B] \
        --data-root DIR [--parts teacher teacher] [--out FILE.png]

With one checkpoint the default is its student against its teacher; with two,
teacher against teacher (e.g. two runs). Histograms of feature values, L2 norms
and pairwise cosines, and a table of summary statistics (mean pairwise cosine and
effective rank are the collapse indicators).
"""

import argparse
import importlib.util
import json
import os.path as osp
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pera_mm.utils.cli import PeraCliErrors, load_config  # noqa: E402
from pera_mm.utils.errors import PeraConfigError  # noqa: E402
from pera_mm.visualization import (  # noqa: E402
    PARTS,
    POOLS,
    encoder_features,
    feature_statistics,
    list_images,
    load_encoder,
    normalisation,
    pairwise_cosines,
)
from pera_mm.visualization.figures import save_histogram_figure  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('config', help='config of the model(s) (architecture, normalisation)')
    parser.add_argument('checkpoints', nargs='+', metavar='CKPT', help='one or two checkpoints')
    parser.add_argument('--data-root', required=True, help='image folder (searched recursively)')
    parser.add_argument('--config-b', help='config of the second checkpoint (default: CONFIG)')
    parser.add_argument(
        '--parts',
        nargs=2,
        choices=PARTS,
        metavar='PART',
        help='encoder of each side (default: student teacher for one checkpoint, '
        'teacher teacher for two)',
    )
    parser.add_argument('--labels', nargs=2, help='legend names of the two sides')
    parser.add_argument('--pool', choices=POOLS, default='cls', help='cls token or mean of patches')
    parser.add_argument('--img-size', type=int, help='input side (default: the backbone img_size)')
    parser.add_argument('--max-images', type=int, default=500, help='first N images only')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--out', default='work_dirs/feature_histograms.png', help='output PNG')
    parser.add_argument('--json', help='also write the statistics here')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def sides(args):
    """(label, config path, checkpoint, part) of the two feature sets."""
    if len(args.checkpoints) > 2:
        raise PeraConfigError(f'give one or two checkpoints, got {len(args.checkpoints)}')
    ckpts = args.checkpoints * (3 - len(args.checkpoints))
    parts = args.parts or (
        ('student', 'teacher') if len(args.checkpoints) == 1 else ('teacher',) * 2
    )
    configs = (args.config, args.config_b or args.config)
    labels = args.labels or [f'{Path(c).stem} {p}' for c, p in zip(ckpts, parts)]
    if labels[0] == labels[1]:
        labels = [f'A: {labels[0]}', f'B: {labels[1]}']
    return list(zip(labels, configs, ckpts, parts))


def main(argv=None):
    args = parse_args(argv)
    plan = sides(args)
    paths = [str(p) for p in list_images([args.data_root])[: args.max_images]]
    if len(paths) < 2:
        raise PeraConfigError(
            f'--data-root {args.data_root}: need at least 2 images, found {len(paths)}'
        )
    sets = {}
    for label, config, ckpt, part in plan:
        cfg = load_config(config)
        vit, _ = load_encoder(cfg, ckpt, part)
        mean, std = normalisation(cfg)
        feats = encoder_features(
            vit,
            paths,
            args.img_size or vit.img_size[0],
            mean,
            std,
            args.pool,
            args.batch_size,
            progress=lambda it, total, label=label: tqdm(it, total=total, desc=label, unit='batch'),
        )
        sets[label] = dict(
            values=feats.flatten().numpy(),
            norms=feats.norm(dim=1).numpy(),
            cosines=pairwise_cosines(feats).numpy(),
            stats=feature_statistics(feats),
        )
    title = f'{args.pool} features on {len(paths)} images of {args.data_root}'
    save_histogram_figure(args.out, sets, title)
    stats = {label: data['stats'] for label, data in sets.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(stats, indent=1))
    for label, s in stats.items():
        print(
            f'{label}: mean {s["value_mean"]:.4f} std {s["value_std"]:.4f} '
            f'norm {s["norm_mean"]:.3f} '
            f'pairwise cosine {s["pairwise_cosine"]:.4f} effective rank {s["effective_rank"]:.2f}'
        )
    print(f'wrote {args.out}')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    PeraCliErrors.run(main, tool='feature_histograms')
