# Copyright (c) pera-mm contributors. All rights reserved.
"""The command line of ``tools/dataset_converters/{potsdam,vaihingen}.py``."""

import argparse

from ...utils.cli import PeraCliErrors
from .isprs_conversion import DEFAULT_LABEL_VARIANT, IsprsTileSet, convert_isprs


def isprs_arg_parser(tile_set: IsprsTileSet, default_out: str) -> argparse.ArgumentParser:
    """The argument parser of the converter of ``tile_set``.

    Args:
        tile_set (IsprsTileSet): the ISPRS dataset converted (``POTSDAM`` or ``VAIHINGEN``).
        default_out (str): output root used when ``-o`` is not given.

    Returns:
        argparse.ArgumentParser: parser of ``DOWNLOAD_DIR [-o OUT] [--labels ...]
        [--clip-size N] [--stride-size N] [--val-mode ...] [--nproc N] [--debug]``.
    """
    parser = argparse.ArgumentParser(
        description=f"Convert the ISPRS {tile_set.name} archives to MMSeg's layout",
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('download_dir', help='folder with the official zips (or their folders)')
    parser.add_argument('-o', '--out-dir', '--out_dir', default=default_out, help='output root')
    parser.add_argument(
        '--labels',
        choices=sorted(tile_set.label_archives),
        default=DEFAULT_LABEL_VARIANT,
        help='label variant: noBoundary = eroded, boundary pixels ignored (default: '
        f'{tile_set.label_archives["noBoundary"]}.zip); '
        f'full = {tile_set.label_archives["full"]}.zip',
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
    return parser


def run_isprs_converter(
    tile_set: IsprsTileSet, default_out: str, argv=None, tool: str = 'pera-mm'
) -> None:
    """Parse ``argv`` and convert; our errors become one stderr line and an exit code.

    Args:
        tile_set (IsprsTileSet): the ISPRS dataset converted.
        default_out (str): output root used when ``-o`` is not given.
        argv (list[str], optional): the arguments; ``sys.argv[1:]`` when None.
        tool (str): the tool's name, first word of the error line.
    """

    def convert(argv):
        args = isprs_arg_parser(tile_set, default_out).parse_args(argv)
        convert_isprs(
            tile_set,
            args.download_dir,
            args.out_dir,
            label_variant=args.labels,
            crop_size=args.clip_size,
            stride=args.stride_size,
            val_mode=args.val_mode,
            nproc=args.nproc,
        )

    PeraCliErrors.run(convert, argv, tool=tool)
