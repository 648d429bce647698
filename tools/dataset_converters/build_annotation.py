#!/usr/bin/env python
"""Write the annotation file of a (very) large tile folder, with a report of rejected files.

    # every image under data/dota_tiles, each fully decoded as the RGB pretraining loader does
    python tools/dataset_converters/build_annotation.py data/dota_tiles \
        -o data/dota_tiles/train.txt --check decode --workers 2
    # multi-band GeoTIFF tiles, checked with the multi-band loader's reader
    python tools/dataset_converters/build_annotation.py data/oscd_tiles \
        -o data/oscd_tiles/train.txt --check decode --decoder multiband

The list file (one path per line, relative to the folder, sorted) is the ``ann_file``
of ``UnlabeledImageDataset`` with ``data_prefix=dict(img_path=<folder>)``. Rejected
files go to ``<out>.rejected.tsv`` (``path<TAB>reason``): empty files, files whose
contents are not the format of their extension (``--check header``, the default), and
files the dataset's decoder cannot fully decode (``--check decode``).
"""

import argparse
import importlib.util
import os.path as osp
import sys
import time

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from tqdm import tqdm  # noqa: E402

from pera_mm.datasets.converters.annotation_index import (  # noqa: E402
    CHECKS,
    DECODERS,
    DEFAULT_EXTENSIONS,
    write_annotation,
)
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402
from pera_mm.utils.errors import PeraFileNotFoundError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Build the annotation (list) file of an image folder tree',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('root', help='the image folder (the dataset img_path)')
    parser.add_argument('-o', '--out', required=True, help='the list file to write')
    parser.add_argument('--report', default=None, help='rejection report (<out>.rejected.tsv)')
    parser.add_argument(
        '--check', choices=CHECKS, default='header', help='how files are checked (header)'
    )
    parser.add_argument(
        '--decoder', choices=DECODERS, default='rgb', help='decoder of --check decode (rgb)'
    )
    parser.add_argument(
        '--extensions', nargs='+', default=DEFAULT_EXTENSIONS, help='file suffixes listed'
    )
    parser.add_argument('--workers', type=int, default=1, help='parallel processes (1)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.root):  # before the progress bar, so the error is the one line
        raise PeraFileNotFoundError(f'{args.root}: no such folder')
    start = time.perf_counter()
    with tqdm(desc='files', unit='file') as bar:
        result = write_annotation(
            args.root,
            args.out,
            report_file=args.report,
            extensions=args.extensions,
            check=args.check,
            decoder=args.decoder,
            workers=args.workers,
            progress=bar.update,
        )
    seconds = time.perf_counter() - start
    checked = result['accepted'] + result['rejected']
    reasons = ', '.join(f'{n} {kind}' for kind, n in sorted(result['reasons'].items()))
    print(
        f'{result["accepted"]} files listed in {result["files"]["annotation"]}; '
        f'{result["rejected"]} rejected ({reasons or "none"}) -> {result["files"]["report"]}; '
        f'{seconds:.2f} s ({checked / max(seconds, 1e-9):.0f} entries/s, --check {args.check}, '
        f'{args.workers} worker(s))'
    )
    return result


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
