#!/usr/bin/env python
"""Cut co-registered high-/mid-resolution scenes into HR/MR pairs for cross-scale pretraining.

    # a Sentinel-2 10 m 4-band scene and its VENuS 5 m scene (s = 2), 64 px MR tiles
    python tools/dataset_converters/cut_hr_mr_pairs.py s2_T31UDQ.tif venus_T31UDQ.tif \
        data/s2-venus-pairs --scale 2 --tile 64
    # several scene pairs into one folder: one annotation file each
    python tools/dataset_converters/cut_hr_mr_pairs.py --pair a_mr.tif a_hr.tif \
        --pair b_mr.tif b_hr.tif data/pairs --scale 2 --tile 64 --format npy

MR tile t px at MR pixel (r, c) <-> HR tile s*t px at the same ground window. Two
georeferenced GeoTIFFs must share the CRS, have HR pixel x s = MR pixel and an MR origin
on the HR pixel grid (other files are aligned at their top-left corners). Outputs
OUT/mr/<name>_<r>_<c>.<fmt>, OUT/hr/<same> and OUT/<ann-file> ("mr/... hr/..." per line,
the PairedHRMRDataset format; with several --pair, <ann-file> lists all of them). A scene
pair that is not co-registered is a one-line error naming it.
"""

import argparse
import importlib.util
import os.path as osp
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.converters.hr_mr_pairs import PAIR_FORMATS, cut_hr_mr_pairs  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Cut co-registered HR and MR scenes into HR/MR pairs',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('paths', nargs='+', help='MR HR OUT, or OUT with --pair')
    parser.add_argument(
        '--pair', nargs=2, action='append', metavar=('MR', 'HR'), help='one scene pair (repeatable)'
    )
    parser.add_argument('--scale', type=int, default=2, help='HR/MR resolution ratio s')
    parser.add_argument('--tile', type=int, default=64, help='MR tile side in pixels')
    parser.add_argument('--stride', type=int, default=None, help='MR step (default: --tile)')
    parser.add_argument('--format', choices=PAIR_FORMATS, default='tif', help='tile file format')
    parser.add_argument('--ann-file', default='pairs.txt', help='annotation file name in OUT')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    args = parser.parse_args(argv)
    expected = 1 if args.pair else 3
    if len(args.paths) != expected:
        parser.error('give MR HR OUT, or --pair MR HR ... OUT')
    return args


def _main(argv=None):
    args = parse_args(argv)
    scenes = args.pair or [args.paths[:2]]
    out = Path(args.paths[-1])
    lines = []
    for mr, hr in scenes:
        pairs = cut_hr_mr_pairs(
            mr, hr, out, args.scale, args.tile, args.stride, args.format, ann_file=args.ann_file
        )
        lines += [f'{m} {h}\n' for m, h in pairs]
    (out / args.ann_file).write_text(''.join(lines))
    print(
        f'{len(lines)} pairs of {args.tile} px MR / {args.scale * args.tile} px HR from '
        f'{len(scenes)} scene pair(s) -> {out / args.ann_file}'
    )


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
