#!/usr/bin/env python
"""PerA pixel reconstructions: masked input / pixel-head prediction / target triplets.

    python tools/analysis_tools/reconstructions.py CONFIG CHECKPOINT IMAGE_OR_DIR... \
        [--mask-ratios 0.2,0.2,0.6 ...] [--out FILE.png]

CHECKPOINT must be a PerA training checkpoint (student, mask token and pixel head;
ours, converted or released). Each image is masked with a random disjoint s / l / t
split at the config's mask ratios (or each ``--mask-ratios`` given): the student
sees the s patches, its pixel head predicts the l patches, t stays hidden (grey).
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
    build_pera_model,
    configured_mask_ratios,
    draw_disjoint_mask,
    list_images,
    load_reconstruction_weights,
    mask_counts,
    model_inputs,
    normalisation,
    reconstruct,
)
from pera_mm.visualization.figures import save_reconstruction_figure  # noqa: E402


def mask_ratios(text):
    try:
        ratios = tuple(float(r) for r in text.split(','))
    except ValueError:
        ratios = ()
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6 or min(ratios) < 0:
        raise argparse.ArgumentTypeError(f'{text!r}: expected s,l,t summing to 1, e.g. 0.2,0.2,0.6')
    return ratios


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('config', help='the PerA config of the checkpoint')
    parser.add_argument('checkpoint', help='PerA training checkpoint')
    parser.add_argument('images', nargs='+', help='image files or folders (searched recursively)')
    parser.add_argument(
        '--mask-ratios',
        type=mask_ratios,
        nargs='+',
        metavar='S,L,T',
        help='one or more s,l,t splits (default: the config DisjointMaskGenerator)',
    )
    parser.add_argument('--img-size', type=int, help='input side (default: the backbone img_size)')
    parser.add_argument('--max-images', type=int, default=4, help='first N images only (default 4)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random masks')
    parser.add_argument('--out', default='work_dirs/reconstructions.png', help='output PNG')
    parser.add_argument('--json', help='also write the per-row mse and patch indices here')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    ratios_list = args.mask_ratios or [configured_mask_ratios(cfg)]
    paths = list_images(args.images)[: args.max_images]
    model = build_pera_model(cfg)
    load_reconstruction_weights(model, args.checkpoint)
    mean, std = normalisation(cfg)
    size = args.img_size or model.backbone.img_size[0]
    p = model.backbone.patch_size
    if size % p:
        raise PeraConfigError(f'--img-size {size} is not divisible by the patch size {p}')
    for ratios in ratios_list:
        mask_counts((size // p) ** 2, ratios)
    generator = torch.Generator().manual_seed(args.seed)
    jobs = [(path, ratios) for path in paths for ratios in ratios_list]
    rows = []
    for path, ratios in tqdm(jobs, desc='reconstructions', unit='row'):
        x, _ = model_inputs([path], size, mean, std)
        flags = draw_disjoint_mask((size // p) ** 2, ratios, generator)
        out = reconstruct(model, x, flags, mean, std)
        rows.append(
            dict(
                name=Path(path).name,
                ratios=ratios,
                mse=out['mse'],
                l_idx=out['l_idx'].tolist(),
                **{k: out[k].permute(1, 2, 0).numpy() for k in ('masked', 'prediction', 'target')},
            )
        )
    title = f'PerA pixel prediction ({Path(args.checkpoint).name}, {size} px, patch {p})'
    save_reconstruction_figure(args.out, rows, title)
    if args.json:
        keep = ('name', 'ratios', 'mse', 'l_idx')
        Path(args.json).write_text(json.dumps([{k: r[k] for k in keep} for r in rows], indent=1))
    print(f'wrote {len(rows)} reconstruction row(s) to {args.out}')


if __name__ == '__main__':
    PeraCliErrors.run(main, tool='reconstructions')
