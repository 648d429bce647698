#!/usr/bin/env python
"""Convert the official LoveDA archives to MMSeg's LoveDADataset layout.

    python tools/dataset_converters/loveda.py DOWNLOAD_DIR [-o data/loveDA]

DOWNLOAD_DIR holds ``Train.zip``, ``Val.zip`` and (optionally) ``Test.zip`` from
the LoveDA release, or the folders ``Train/``, ``Val/``, ``Test/`` they extract
to. Rural and Urban images of a split go into one folder (their ids are
unique); files are copied byte for byte::

    out/img_dir/{train,val,test}/<id>.png    out/ann_dir/{train,val}/<id>.png

MMSeg's own converter of the same name is not installed with the pip package;
this one also checks that every image has a mask of its size. See
docs/data_preparation.md.
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.converters import convert_loveda  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert the LoveDA archives to MMSeg's layout", epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('download_dir', help='folder with Train.zip, Val.zip, Test.zip')
    parser.add_argument('-o', '--out-dir', '--out_dir', default='data/loveDA', help='output root')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    convert_loveda(args.download_dir, args.out_dir)


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
