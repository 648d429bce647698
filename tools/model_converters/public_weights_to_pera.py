#!/usr/bin/env python
"""Convert public ViT weights (timm, DINOv2, DINOv3, MMPretrain) to PerAViT weights.

    python tools/model_converters/public_weights_to_pera.py SRC DST --layout LAYOUT \
        [--img-size PX] [--patch-size P] [--num-heads N] [--report REPORT.json] [--non-strict]

SRC is a ``.pth`` (memory-mapped) or ``.safetensors`` file; LAYOUT is one of
``timm``, ``dinov2``, ``dinov3``, ``mmpretrain``. DST (``.pth``, or
``.safetensors``) gets the PerAViT-named backbone weights and, in its meta, the
``PerAViT`` arguments they need (``pera_vit``) and the key report (missing /
unexpected / reshaped / dropped-by-rule). See docs/public_weights.md.
"""

import argparse
import importlib.util
import json
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert public ViT weights (timm, DINOv2, DINOv3, MMPretrain) to '
        'PerAViT weights, with a key report'
    )
    parser.add_argument('src', help='source checkpoint (.pth or .safetensors)')
    parser.add_argument('dst', help='output file (.pth or .safetensors)')
    parser.add_argument(
        '--layout', required=True, metavar='timm|dinov2|dinov3|mmpretrain', help='key layout of SRC'
    )
    parser.add_argument(
        '--img-size', type=int, help='PerAViT img_size: the position table is resized to it'
    )
    parser.add_argument(
        '--patch-size',
        type=int,
        help='PerAViT patch size (e.g. 16 for a 14-px source): FlexiViT pseudo-inverse resize',
    )
    parser.add_argument('--num-heads', type=int, help='attention heads (default: width / 64)')
    parser.add_argument('--report', help='also write the key report to this JSON file')
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='report unexpected source keys instead of failing on the first one',
    )
    return parser.parse_args(argv)


def _overrides(args):
    out = {}
    if args.img_size is not None:
        out['img_size'] = args.img_size
    if args.patch_size is not None:
        out['patch_size'] = args.patch_size
    if args.num_heads is not None:
        out['arch'] = dict(num_heads=args.num_heads)
    return out


def _save(weights, path, meta):
    from pera_mm.utils.checkpoint_convert import save_weights_file

    if path.endswith('.safetensors'):
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in weights.items()},
            path,
            metadata={k: json.dumps(v) for k, v in meta.items()},
        )
    else:
        save_weights_file(weights, path, meta, progress=True)


def main(argv=None):
    args = parse_args(argv)
    # imported after parsing so that --help answers without loading the model stack
    from pera_mm.utils.errors import PeraError
    from pera_mm.utils.public_weights import check_layout, convert_public_weights, read_weights

    try:
        check_layout(args.layout)
        state_dict = read_weights(args.src)
        weights, report = convert_public_weights(
            state_dict,
            args.layout,
            cfg_overrides=_overrides(args),
            source=args.src,
            strict=not args.non_strict,
            progress=True,
        )
        meta = dict(
            pera_vit=report['cfg'],
            source=osp.abspath(args.src),
            layout=args.layout,
            report={k: v for k, v in report.items() if k not in ('cfg', 'loaded')},
        )
        _save(weights, args.dst, meta)
    except PeraError as e:
        sys.exit(f'error: {e}')
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(report, f, indent=2)
    print(
        f'wrote {len(weights)} PerAViT tensors to {args.dst} ({args.layout} layout): '
        f'missing {len(report["missing"])}, unexpected {len(report["unexpected"])}, '
        f'reshaped {len(report["reshaped"])}, dropped by rule {len(report["dropped"])}'
    )


if __name__ == '__main__':
    main()
