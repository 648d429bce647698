#!/usr/bin/env python
"""Extract the backbone of a PerA training checkpoint for downstream use.

    python tools/model_converters/extract_backbone.py SRC DST \
        [--student] [--format pera|mmpretrain] [--prefix backbone.]

By default the TEACHER backbone (``teacher.backbone.*``, the encoder the paper
fine-tunes) is written with PerAViT names. ``--format mmpretrain`` renames
the keys for MMPretrain's ``VisionTransformer``. ``--prefix backbone.`` keys
everything ``backbone.*``, for ``init_cfg=dict(type='Pretrained',
checkpoint=DST, prefix='backbone.')`` or a whole-model ``load_from``;
without it use ``init_cfg=dict(type='Pretrained', checkpoint=DST)`` on the
backbone. SRC is memory-mapped: only the backbone's bytes are read. The output's
``meta`` keeps the source config's backbone settings and normalisation
(``backbone_cfg``, ``mean``, ``std``) for ``export_timm.py``.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.utils.checkpoint_convert import (  # noqa: E402
    BACKBONE_FORMATS,
    CheckpointConvertError,
    extract_backbone,
    infer_vit_arch,
    load_weights_file,
    save_weights_file,
    select_backbone,
    unwrap_state_dict,
)
from pera_mm.utils.timm_export import training_settings  # noqa: E402
from pera_mm.version import __version__  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Extract the (teacher) backbone of a PerA checkpoint'
    )
    parser.add_argument('src', help='PerA training checkpoint (MMEngine)')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--student',
        action='store_true',
        help='take the student backbone (backbone.*) instead of the teacher',
    )
    parser.add_argument(
        '--format',
        choices=BACKBONE_FORMATS,
        default='pera',
        help='key names: PerAViT (pera) or MMPretrain VisionTransformer',
    )
    parser.add_argument('--prefix', default='', help='prepended to every key, e.g. "backbone."')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    part = 'student' if args.student else 'teacher'
    try:
        checkpoint = load_weights_file(args.src, mmap=True)
        state_dict = unwrap_state_dict(checkpoint, args.src)
        backbone = extract_backbone(state_dict, part, args.format, args.prefix, source=args.src)
        src_meta = checkpoint.get('meta')
        src_meta = src_meta if isinstance(src_meta, dict) else {}
        settings = training_settings(src_meta)
        meta = dict(
            converter='extract_backbone',
            source=osp.abspath(args.src),
            part=part,
            format=args.format,
            prefix=args.prefix,
            pera_mm_version=__version__,
            arch=infer_vit_arch(select_backbone(state_dict, part, args.src)),
            **{k: src_meta[k] for k in ('epoch', 'iter') if isinstance(src_meta.get(k), int)},
        )
        if settings['backbone']:
            meta['backbone_cfg'] = settings['backbone']
        meta.update({k: settings[k] for k in ('mean', 'std') if k in settings})
        save_weights_file(backbone, args.dst, meta, progress=True)
    except CheckpointConvertError as e:
        sys.exit(f'error: {e}')
    print(f'wrote {len(backbone)} {part} backbone tensors ({args.format}) to {args.dst}')


if __name__ == '__main__':
    main()
