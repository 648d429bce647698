# Copyright (c) pera-mm contributors. All rights reserved.
"""Seeded, stratified train/test split of a folder-per-class scene dataset.

Writes MMPretrain annotation files (``relative/path label`` per line) and a
classes file (sorted class-folder names) for ``SceneClassificationDataset``,
and prints the per-class counts. Examples::

    # AID, 20 % of each class for training
    python tools/dataset_converters/split_scene_dataset.py data/aid/AID \\
        --out-dir data/aid/meta --train-ratio 0.2 --seed 0
    # UC Merced, 80/20 and 50/50
    python tools/dataset_converters/split_scene_dataset.py data/ucm/UCMerced_LandUse/Images \\
        --out-dir data/ucm/meta --train-ratio 0.8
    python tools/dataset_converters/split_scene_dataset.py data/ucm/UCMerced_LandUse/Images \\
        --out-dir data/ucm/meta --train-ratio 0.5

Files written to ``--out-dir``: ``classes.txt``,
``split-<train%>-<test%>_seed<seed>_train.txt`` and ``..._test.txt``. Bad input
(no class folder, a class folder with no image, an unreadable image) ends with
one line on stderr naming the folder or file (exit code 4; 5 for a missing folder).
"""

import argparse
import importlib.util
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from pera_mm.datasets.scene_split import split_scene_dataset  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Split a folder-per-class scene dataset into stratified train/test '
        'annotation files.',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('root', help='dataset folder with one sub-folder of images per class')
    parser.add_argument(
        '--out-dir',
        help='where to write classes.txt and the split files (default: <root>/../meta)',
    )
    parser.add_argument(
        '--train-ratio',
        type=float,
        required=True,
        help='fraction of each class used for training, in (0, 1) (AID 0.2; UCM 0.8 or 0.5)',
    )
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument(
        '--no-check-images',
        action='store_true',
        help='do not decode every image first (faster; a bad image then fails in training)',
    )
    parser.add_argument('--debug', action='store_true', help='show tracebacks of data errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    root = osp.normpath(args.root)
    out_dir = args.out_dir or osp.join(osp.dirname(osp.abspath(root)), 'meta')
    result = split_scene_dataset(
        root, out_dir, args.train_ratio, seed=args.seed, check_images=not args.no_check_images
    )
    width = max(len(name) for name in result['classes'])
    print(f'{"label":>5}  {"class":<{width}}  {"train":>6}  {"test":>6}')
    for label, name in enumerate(result['classes']):
        n_train, n_test = result['counts'][name]
        print(f'{label:>5}  {name:<{width}}  {n_train:>6}  {n_test:>6}')
    print(
        f'{"":>5}  {"total":<{width}}  {len(result["train"]):>6}  {len(result["test"]):>6}'
        f'  ({len(result["classes"])} classes, train ratio {args.train_ratio}, seed {args.seed})'
    )
    for kind in ('classes', 'train', 'test'):
        print(f'wrote {result["files"][kind]}')
    return result


if __name__ == '__main__':
    PeraCliErrors.run(main, tool='split_scene_dataset.py')
