#!/usr/bin/env python
"""Teacher self-attention maps of a PerA encoder, per head, cls -> patches, over the image.

    python tools/analysis_tools/attention_maps.py CONFIG CHECKPOINT IMAGE_OR_DIR... \
        [--block -1] [--out-dir DIR] [--save-maps]

CHECKPOINT: a PerA training checkpoint (its EMA teacher is read), an
``extract_backbone`` output, or released weights (converted or as released).
CONFIG names the architecture (``model.backbone``) and the normalisation. The
blocks use fused SDPA, so ``softmax(q kᵀ / √d)`` of the named block is recomputed
from its qkv weights. One PNG per image: the image, the head mean and every head.
"""

import argparse
import importlib.util
import os.path as osp
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pera_mm.utils.cli import PeraCliErrors, load_config  # noqa: E402
from pera_mm.visualization import (  # noqa: E402
    PARTS,
    block_attention,
    cls_attention_maps,
    list_images,
    load_encoder,
    model_inputs,
    normalisation,
    resolve_block,
)
from pera_mm.visualization.figures import save_attention_figure  # noqa: E402
from pera_mm.visualization.images import to_display  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('config', help='config of the model (architecture, normalisation)')
    parser.add_argument(
        'checkpoint', help='training checkpoint, extracted backbone or released weights'
    )
    parser.add_argument('images', nargs='+', help='image files or folders (searched recursively)')
    parser.add_argument('--block', type=int, default=-1, help='block index (default -1, the last)')
    parser.add_argument(
        '--part', choices=PARTS, default='teacher', help='encoder of a training checkpoint'
    )
    parser.add_argument('--img-size', type=int, help='input side (default: the backbone img_size)')
    parser.add_argument(
        '--max-images', type=int, default=16, help='first N images only (default 16)'
    )
    parser.add_argument('--out-dir', default='work_dirs/attention_maps', help='where the PNGs go')
    parser.add_argument(
        '--save-maps', action='store_true', help='also write <image>_block<B>.npz with the weights'
    )
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config)
    paths = list_images(args.images)[: args.max_images]
    vit, layout = load_encoder(cfg, args.checkpoint, args.part)
    block = resolve_block(vit, args.block)
    size = args.img_size or vit.img_size[0]
    mean, std = normalisation(cfg)
    out_dir = Path(args.out_dir)
    for path in tqdm(paths, desc='attention maps', unit='image'):
        x, pixels = model_inputs([path], size, mean, std)
        weights = block_attention(vit, x, block)
        grid = (size // vit.patch_size, size // vit.patch_size)
        prefix = 1 + getattr(vit, 'num_register_tokens', 0)
        maps = cls_attention_maps(weights, grid, prefix)[0].numpy()
        stem = f'{Path(path).stem}_block{block}'
        title = f'{Path(path).name}: {args.part} block {block}, cls -> patches ({layout} layout)'
        save_attention_figure(out_dir / f'{stem}.png', to_display(pixels[0]), maps, title)
        if args.save_maps:
            np.savez(
                out_dir / f'{stem}.npz',
                cls_row=weights[0, :, 0].numpy(),
                cls_maps=maps,
                block=block,
                img_size=size,
            )
    print(f'wrote {len(paths)} attention figure(s) of block {block} to {out_dir}')


if __name__ == '__main__':
    PeraCliErrors.run(main, tool='attention_maps')
