#!/usr/bin/env python
"""Convert the official ISPRS Potsdam archives to MMSeg's PotsdamDataset layout.

    python tools/dataset_converters/potsdam.py DOWNLOAD_DIR [-o data/potsdam] \
        [--labels noBoundary|full] [--clip-size 512] [--stride-size 256] \
        [--val-mode whole|crops] [--nproc N]

DOWNLOAD_DIR holds ``2_Ortho_RGB.zip`` and ``5_Labels_all_noBoundary.zip`` (the
default eroded labels, ``--labels noBoundary``) or ``5_Labels_all.zip``
(``--labels full``), or the folders they were extracted to. The 24 training
tiles are cut into 512x512 crops every 256 pixels (a TRUE stride, the last
crop of each row and column ending at the border: 23 x 23 = 529 crops per
6000x6000 tile); the 14 test tiles go to ``val`` whole, for slide inference.
Labels become 0 (boundary, ignored) and 1..6 (impervious surface, building,
low vegetation, tree, car, clutter). See docs/data_preparation.md.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.converters import (  # noqa: E402
    DEFAULT_LABEL_VARIANT,
    POTSDAM,
    convert_isprs,
)
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402

TILE_SET = POTSDAM
DEFAULT_OUT = 'data/potsdam'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=f"Convert the ISPRS {TILE_SET.name} archives to MMSeg's layout",
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('download_dir', help='folder with the official zips (or their folders)')
    parser.add_argument('-o', '--out-dir', '--out_dir', default=DEFAULT_OUT, help='output root')
    parser.add_argument(
        '--labels',
        choices=sorted(TILE_SET.label_archives),
        default=DEFAULT_LABEL_VARIANT,
        help='label variant: noBoundary = eroded, boundary pixels ignored (default: '
        f'{TILE_SET.label_archives["noBoundary"]}.zip); '
        f'full = {TILE_SET.label_archives["full"]}.zip',
    )
    parser.add_argument('--clip-size', '--clip_size', type=int, default=512, help='crop side')
    parser.add_argument(
        '--stride-size', '--stride_size', type=int, default=256, help='step between crops'
    )
    parser.add_argument(
        '--val-mode',
        choices=('whole', 'crops'),
        default='whole',
        help='validation tiles whole (default, for slide inference) or cropped',
    )
    parser.add_argument('--nproc', type=int, default=1, help='worker processes (one tile each)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    convert_isprs(
        TILE_SET,
        args.download_dir,
        args.out_dir,
        label_variant=args.labels,
        crop_size=args.clip_size,
        stride=args.stride_size,
        val_mode=args.val_mode,
        nproc=args.nproc,
    )


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
