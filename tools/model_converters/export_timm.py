#!/usr/bin/env python
"""Export the PerA teacher encoder to timm's local folder format.

    python tools/model_converters/export_timm.py SRC OUT_DIR \
        [--student] [--img-size 512] [--pos-resize runtime|load] \
        [--num-heads N] [--layer-scale-init V] [--mean R G B --std R G B]

SRC is a PerA training checkpoint (``teacher.backbone.*``), the released PerA
layout, or ``extract_backbone`` output. OUT_DIR gets ``config.json`` and
``model.safetensors``; then

    model = timm.create_model('local-dir:OUT_DIR', pretrained=True)

builds the encoder (``num_classes=0``: ``model(x)`` is the final-normed cls
token, ``model.forward_features(x)`` every token). SRC is memory-mapped: only
the encoder's bytes are read.
"""

import argparse
import importlib.util
import os.path as osp
import re
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.utils.checkpoint_convert import (  # noqa: E402
    load_weights_file,
    unwrap_state_dict,
)
from pera_mm.utils.errors import PeraError  # noqa: E402
from pera_mm.utils.timm_export import (  # noqa: E402
    POS_RESIZE_MODES,
    export_timm,
    find_encoder,
    training_settings,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Export the PerA teacher encoder to timm's local folder format "
        "(config.json + model.safetensors, for timm.create_model('local-dir:DIR'))"
    )
    parser.add_argument(
        'src', help='PerA training checkpoint, released weights or extracted backbone'
    )
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--student', action='store_true', help='export the student encoder instead of the teacher'
    )
    parser.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        metavar='PX',
        help='write the position table resized to this input size (H [W]); default: the '
        'pretraining size. timm resizes differently from PerAViT (see README)',
    )
    parser.add_argument(
        '--pos-resize',
        default='runtime',
        metavar='|'.join(POS_RESIZE_MODES),
        help="with --img-size: 'runtime' = as PerAViT resizes for an input of that size "
        "(interpolate_offset), 'load' = as a PerAViT built at that size loads the weights",
    )
    parser.add_argument(
        '--num-heads', type=int, help="attention heads (default: the checkpoint's config / arch)"
    )
    parser.add_argument(
        '--layer-scale-init', type=float, help='timm init_values when the encoder has LayerScale'
    )
    parser.add_argument(
        '--mean', type=float, nargs='+', help='normalisation mean in 0-255 units (config style)'
    )
    parser.add_argument('--std', type=float, nargs='+', help='normalisation std in 0-255 units')
    parser.add_argument(
        '--ignore',
        nargs='+',
        default=[],
        metavar='REGEX',
        help='released-layout source keys to drop on purpose (e.g. "ibot_head")',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    part = 'student' if args.student else 'teacher'
    img_size = None
    if args.img_size is not None:
        if len(args.img_size) > 2:
            sys.exit(f'error: --img-size takes H or H W, got {args.img_size}')
        img_size = tuple(args.img_size) * (3 - len(args.img_size))
    if args.pos_resize not in POS_RESIZE_MODES:
        sys.exit(
            f'error: --pos-resize must be one of {", ".join(POS_RESIZE_MODES)}; '
            f'got {args.pos_resize!r}'
        )
    if (args.mean is None) != (args.std is None):
        sys.exit('error: give --mean and --std together')
    try:
        checkpoint = load_weights_file(args.src, mmap=True)
        state_dict = unwrap_state_dict(checkpoint, args.src)
        ignore = [re.compile(p) for p in args.ignore]
        state_dict = {k: v for k, v in state_dict.items() if not any(r.search(k) for r in ignore)}
        vit = find_encoder(state_dict, part, args.src)
        config = export_timm(
            vit,
            args.out_dir,
            settings=training_settings(checkpoint.get('meta')),
            num_heads=args.num_heads,
            layer_scale_init=args.layer_scale_init,
            mean=args.mean,
            std=args.std,
            img_size=img_size,
            pos_resize=args.pos_resize,
            source=args.src,
            progress=True,
        )
    except PeraError as e:
        sys.exit(f'error: {e}')
    m = config['model_args']
    print(
        f'wrote {len(vit)} {part} encoder tensors to {args.out_dir} '
        f'(timm {config["architecture"]}: embed_dim {m["embed_dim"]}, depth {m["depth"]}, '
        f'heads {m["num_heads"]}, img_size {m["img_size"]})'
    )


if __name__ == '__main__':
    main()
