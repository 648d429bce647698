#!/usr/bin/env python
"""Cut change-detection pairs of any size into square crops with a real overlap.

    # a folder with A/, B/, label/ (e.g. a LEVIR-CD split of 1024 x 1024 tiles)
    python tools/dataset_converters/crop_change_pairs.py data/LEVIR-CD/train \
        data/LEVIR-CD-512/train --crop-size 512 --stride 256 --list-name train
    # explicit files (e.g. the 952 x 640 SZTAKI AirChange BMPs)
    python tools/dataset_converters/crop_change_pairs.py --pair Szada/1/im1.bmp \
        Szada/1/im2.bmp Szada/1/gt.bmp data/SZTAKI-256 --crop-size 256 --stride 192

Crops start every ``--stride`` pixels; the last one of each row and column ends at the
border, so every pixel is covered and nothing is padded (MMSeg's converter ignores its
stride). Outputs ``OUT/{A,B,label}/<name>_<y0>_<x0>.png`` (label 0/255) and
``OUT/list/<list-name>.txt``, the flat layout the change-detection datasets read. A pair
whose dates differ in size, or a label with values other than 0/255, is a one-line error
naming the files.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.change_pair_crops import crop_pairs, find_pairs, pair_triples  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Cut change-detection pairs into square crops with a true stride',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument(
        'paths', nargs='+', help='SRC OUT (SRC with A/, B/, label/), or OUT with --pair'
    )
    parser.add_argument(
        '--pair',
        nargs=3,
        action='append',
        metavar=('A', 'B', 'LABEL'),
        help='one pair of files (repeatable)',
    )
    parser.add_argument(
        '--crop-size', '--crop_size', type=int, default=512, help='crop side (512 or 256)'
    )
    parser.add_argument(
        '--stride', type=int, default=None, help='step between crops (default: crop/2)'
    )
    parser.add_argument('--list-name', '--list_name', default='all', help='name of the list file')
    parser.add_argument(
        '--changed-value', type=int, default=255, help='label value of changed pixels'
    )
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    args = parser.parse_args(argv)
    expected = 1 if args.pair else 2
    if len(args.paths) != expected:
        parser.error(
            'give SRC OUT, or --pair A B LABEL ... OUT'
            if not args.pair
            else 'give only OUT with --pair'
        )
    return args


def _main(argv=None):
    args = parse_args(argv)
    triples = pair_triples(args.pair) if args.pair else find_pairs(args.paths[0])
    stride = args.crop_size // 2 if args.stride is None else args.stride
    names = crop_pairs(
        triples, args.paths[-1], args.crop_size, stride, args.list_name, args.changed_value
    )
    print(
        f'{len(names)} crops of {args.crop_size} px (stride {stride}) from '
        f'{len(triples)} pairs -> {args.paths[-1]}'
    )


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
