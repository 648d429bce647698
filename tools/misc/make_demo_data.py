# Copyright (c) pera-mm contributors. All rights reserved.
"""Generate the procedural demo dataset used by the demo configs and tests.

Example::

    python tools/misc/make_demo_data.py data/pera_demo --num 256 --size 192
"""

import argparse

from pera_mm.utils.scene_generator import generate_demo_dataset


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Write procedural remote-sensing-like RGB JPEG tiles '
        '(skips the work when the folder already holds them).'
    )
    parser.add_argument(
        'out_dir',
        nargs='?',
        default='data/pera_demo',
        help='output folder (default: data/pera_demo)',
    )
    parser.add_argument('--num', type=int, default=256, help='number of tiles (default 256)')
    parser.add_argument('--size', type=int, default=192, help='tile side in px (default 192)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    generate_demo_dataset(
        args.out_dir, num_images=args.num, size=args.size, seed=args.seed, log=print
    )


if __name__ == '__main__':
    main()
