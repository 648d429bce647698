#!/usr/bin/env python
"""Convert weights of the authors' released PerA code to pera_mm's layout.

    python tools/model_converters/pera_official_to_mm.py SRC DST \
        [--keep all|teacher|teacher-backbone]

SRC may be a full training state dict (``student.*``, ``teacher.*``,
``pred_head.*``, ``s_mask_token``), wrapped in ``model`` / ``state_dict`` /
``student`` + ``teacher`` entries, with DDP ``module.`` prefixes or DINOv2
chunked blocks, or a teacher-only export (``backbone.*``, ``dino_head.*``).
DST holds ``{'state_dict', 'meta'}`` for :class:`pera_mm.models.PerA`
(``load_from=DST`` or MMEngine's ``load_checkpoint``).

SRC is memory-mapped (``torch.load(..., mmap=True)``): optimizer state and
every tensor that ``--keep`` drops are never read, so converting the ~9 GB
released ViT-G/16-1024 training checkpoint needs about the kept bytes of RAM.
``--keep teacher`` keeps ``teacher.*`` (backbone + projector),
``--keep teacher-backbone`` only ``teacher.backbone.*``.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.utils.checkpoint_convert import (  # noqa: E402
    KEEP_CHOICES,
    CheckpointConvertError,
    convert_official_to_pera,
    infer_vit_arch,
    load_weights_file,
    save_weights_file,
    select_backbone,
    select_kept,
    unwrap_state_dict,
)
from pera_mm.version import __version__  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert released PerA weights to the pera_mm layout'
    )
    parser.add_argument('src', help='released PerA checkpoint')
    parser.add_argument('dst', help='output checkpoint path')
    parser.add_argument(
        '--copy-teacher-to-student',
        action='store_true',
        help='teacher-only input: also write the teacher weights to the '
        'student keys (backbone.*, projector.*)',
    )
    parser.add_argument(
        '--ignore',
        nargs='+',
        default=[],
        metavar='REGEX',
        help='source keys to drop on purpose (e.g. "ibot_head")',
    )
    parser.add_argument(
        '--keep',
        default='all',
        metavar='|'.join(KEEP_CHOICES),
        help="what to write: 'all' (default: student, teacher, heads), 'teacher' "
        "(teacher.*) or 'teacher-backbone' (teacher.backbone.*)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.keep not in KEEP_CHOICES:
            raise CheckpointConvertError(
                f'--keep must be one of {", ".join(KEEP_CHOICES)}; got {args.keep!r}'
            )
        if args.copy_teacher_to_student and args.keep != 'all':
            raise CheckpointConvertError(
                f'--copy-teacher-to-student writes student keys; it needs --keep all, '
                f'not --keep {args.keep}'
            )
        source = unwrap_state_dict(load_weights_file(args.src, mmap=True), args.src)
        state_dict = convert_official_to_pera(
            source,
            copy_teacher_to_student=args.copy_teacher_to_student,
            ignore=args.ignore,
            source=args.src,
        )
        arch = infer_vit_arch(select_backbone(state_dict, 'teacher', args.src))
        state_dict = select_kept(state_dict, args.keep, args.src)
        meta = dict(
            converter='pera_official_to_mm',
            source=osp.abspath(args.src),
            pera_mm_version=__version__,
            keep=args.keep,
            teacher_only=not any(
                k.startswith('predictor.') or k == 'mask_token' for k in state_dict
            ),
            arch=arch,
        )
        save_weights_file(state_dict, args.dst, meta, progress=True)
    except CheckpointConvertError as e:
        sys.exit(f'error: {e}')
    print(f'wrote {len(state_dict)} tensors to {args.dst}')


if __name__ == '__main__':
    main()
