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

import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.converters import POTSDAM, run_isprs_converter  # noqa: E402

DEFAULT_OUT = 'data/potsdam'


def main(argv=None):
    run_isprs_converter(POTSDAM, DEFAULT_OUT, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
