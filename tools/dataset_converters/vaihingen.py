#!/usr/bin/env python
"""Convert the official ISPRS Vaihingen archives to MMSeg's ISPRSDataset layout.

    python tools/dataset_converters/vaihingen.py DOWNLOAD_DIR [-o data/vaihingen] \
        [--labels noBoundary|full] [--clip-size 512] [--stride-size 256] \
        [--val-mode whole|crops] [--nproc N]

DOWNLOAD_DIR holds ``ISPRS_semantic_labeling_Vaihingen.zip`` (the IRRG images,
``top/top_mosaic_09cm_area<N>.tif``) and
``ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip`` (the
default eroded labels, ``--labels noBoundary``) or
``ISPRS_semantic_labeling_Vaihingen_ground_truth_COMPLETE.zip`` (``--labels
full``), or the folders they were extracted to. The 16 training areas are cut
into 512x512 crops every 256 pixels (a TRUE stride, the last crop of each row
and column ending at the border); the 17 test areas go to ``val`` whole, for
slide inference. Labels become 0 (boundary, ignored) and 1..6 (impervious
surface, building, low vegetation, tree, car, clutter). See
docs/data_preparation.md.
"""

import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.converters import VAIHINGEN, run_isprs_converter  # noqa: E402

DEFAULT_OUT = 'data/vaihingen'


def main(argv=None):
    run_isprs_converter(VAIHINGEN, DEFAULT_OUT, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
