#!/usr/bin/env python
"""Cut large scenes into tiles of any size and overlap, keeping their georeferencing.

    # RGB pictures (DOTA, iSAID): 512 px tiles, 128 px overlap, PNG + .geo.json sidecars
    python tools/dataset_converters/tile_scenes.py DOTA/images -o data/dota_tiles \
        --tile-size 512 --overlap 128 --workers 2
    # Sentinel-2 band folders (OSCD): B2/B3/B4/B8 stacked, 256 px GeoTIFF tiles (uint16)
    python tools/dataset_converters/tile_scenes.py OSCD/*/imgs_1 -o data/oscd_tiles \
        --bands B02 B03 B04 B08 --tile-size 256
    # the same scenes as 8-bit RGB PNGs, each band clipped to its 2nd-98th percentile
    python tools/dataset_converters/tile_scenes.py OSCD/*/imgs_1 -o data/oscd_rgb \
        --bands B04 B03 B02 --tile-size 128 --scaling percentile --format png

Inputs are scene files (GeoTIFF, PNG, JPEG, BMP), folders searched for them, or with
``--bands`` folders of single-band files, one scene each (coarser bands are resampled
bilinearly onto the finest band's grid). Tiles whose no-data fraction is above
``--max-nodata`` (default 0.5) are skipped. Each scene gets a folder; its ``.done``
marker is written last, so running the same command again resumes an interrupted run.
"""

import argparse
import importlib.util
import os.path as osp
import sys
import time

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from tqdm import tqdm  # noqa: E402

from pera_mm.datasets.converters.scene_tiling import SCALINGS, TilingSpec, tile_scenes  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Tile large scenes (GeoTIFF, PNG/JPEG/BMP, band folders)',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('inputs', nargs='+', help='scene files, folders of them, or band folders')
    parser.add_argument('-o', '--out-dir', required=True, help='output root (one folder per scene)')
    parser.add_argument('--tile-size', type=int, required=True, help='tile side in pixels')
    parser.add_argument('--overlap', type=int, default=0, help='pixels shared by neighbours (0)')
    parser.add_argument(
        '--bands', nargs='+', default=(), help='band-file endings to stack (folder scenes)'
    )
    parser.add_argument('--band-ext', default='.tif', help='extension of band files (.tif)')
    parser.add_argument(
        '--max-nodata',
        type=float,
        default=0.5,
        help='skip tiles with a larger fraction of no-data pixels (default 0.5)',
    )
    parser.add_argument(
        '--nodata',
        type=float,
        default=None,
        help="no-data value (default: the file's, else 0; a pixel is no-data in all bands)",
    )
    parser.add_argument(
        '--scaling',
        choices=SCALINGS,
        default='none',
        help='to uint8: per-band scene percentiles, or value / --divisor (default none)',
    )
    parser.add_argument(
        '--percentiles', type=float, nargs=2, default=(2.0, 98.0), help='low high (2 98)'
    )
    parser.add_argument('--divisor', type=float, default=10000 / 255, help='for --scaling divide')
    parser.add_argument(
        '--format', choices=('auto', 'tif', 'png'), default='auto', help='tile format (auto)'
    )
    parser.add_argument('--workers', type=int, default=1, help='scenes tiled in parallel (1)')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    spec = TilingSpec(
        tile_size=args.tile_size,
        overlap=args.overlap,
        bands=tuple(args.bands),
        band_ext=args.band_ext,
        max_nodata=args.max_nodata,
        nodata=args.nodata,
        scaling=args.scaling,
        percentiles=tuple(args.percentiles),
        divisor=args.divisor,
        out_format=args.format,
    )

    def progress(iterator, total):
        return tqdm(iterator, total=total, desc='scenes', unit='scene')

    start = time.perf_counter()
    results = tile_scenes(args.inputs, args.out_dir, spec, workers=args.workers, progress=progress)
    seconds = time.perf_counter() - start
    for result in results:
        if result['note']:
            print(f'{result["source"]}: no tile ({result["note"]})')
    written = sum(r['written'] for r in results)
    skipped = sum(r['skipped_nodata'] for r in results)
    resumed = sum(r['resumed'] for r in results)
    print(
        f'{written} tiles of {args.tile_size} px (overlap {args.overlap}) from {len(results)} '
        f'scenes -> {args.out_dir}; {skipped} skipped as no-data; {resumed} scenes already done; '
        f'{seconds:.2f} s ({written / max(seconds, 1e-9):.1f} tiles/s, {args.workers} worker(s))'
    )
    return results


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
