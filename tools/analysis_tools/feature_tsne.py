#!/usr/bin/env python
"""t-SNE (or UMAP) of PerA encoder features of a folder-per-class set, coloured by class.

    python tools/analysis_tools/feature_tsne.py CONFIG CHECKPOINT --data-root DIR \
        [--out FILE.png] [--method tsne|umap]

The figure states the kNN top-1 accuracy of the same features under the project
protocol (:mod:`pera_mm.evaluation.knn_protocol`: images 1-5 of each class are
the bank, 6-10 the queries, cosine vote weighted by exp(sim / T), k=20, T=0.07).
UMAP needs the optional umap-learn package.
"""

import argparse
import importlib.util
import json
import os.path as osp
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pera_mm.evaluation.knn_protocol import split_bank_query, weighted_knn_top1  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors, load_config  # noqa: E402
from pera_mm.visualization import (  # noqa: E402
    METHODS,
    PARTS,
    POOLS,
    check_method,
    embed_2d,
    encoder_features,
    labelled_images,
    load_encoder,
    normalisation,
)
from pera_mm.visualization.figures import save_embedding_figure  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0], epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('config', help='config of the model (architecture, normalisation)')
    parser.add_argument(
        'checkpoint', help='training checkpoint, extracted backbone or released weights'
    )
    parser.add_argument('--data-root', required=True, help='folder with one sub-folder per class')
    parser.add_argument(
        '--part', choices=PARTS, default='teacher', help='encoder of a training checkpoint'
    )
    parser.add_argument('--pool', choices=POOLS, default='cls', help='cls token or mean of patches')
    parser.add_argument('--method', choices=METHODS, default='tsne', help='2-D embedding')
    parser.add_argument(
        '--img-size',
        type=int,
        help="input side (default: the config's knn_eval_size, else the backbone img_size)",
    )
    parser.add_argument('--k', type=int, default=20, help='kNN neighbours (protocol: 20)')
    parser.add_argument('--temperature', type=float, default=0.07, help='kNN vote temperature')
    parser.add_argument('--perplexity', type=float, default=30.0, help='t-SNE perplexity')
    parser.add_argument('--seed', type=int, default=0, help='embedding seed')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--out', default='work_dirs/feature_tsne.png', help='output PNG')
    parser.add_argument('--json', help='also write the embedding, labels and kNN accuracy here')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_method(args.method)
    cfg = load_config(args.config)
    items, classes = labelled_images(args.data_root)
    bank, query = split_bank_query(args.data_root)
    vit, _ = load_encoder(cfg, args.checkpoint, args.part)
    mean, std = normalisation(cfg)
    size = args.img_size or cfg.get('knn_eval_size') or vit.img_size[0]
    paths = [str(p) for p, _ in items]
    feats = encoder_features(
        vit,
        paths,
        size,
        mean,
        std,
        args.pool,
        args.batch_size,
        progress=lambda it, total: tqdm(it, total=total, desc='features', unit='batch'),
    )
    row = {p: i for i, p in enumerate(paths)}
    knn = weighted_knn_top1(
        feats[[row[p] for p, _ in bank]],
        [y for _, y in bank],
        feats[[row[p] for p, _ in query]],
        [y for _, y in query],
        k=args.k,
        temperature=args.temperature,
    )
    xy = embed_2d(feats, args.method, args.perplexity, args.seed)
    labels = np.array([y for _, y in items])
    title = (
        f'{args.method.upper()} of {args.part} {args.pool} features, {len(items)} images of '
        f'{Path(args.data_root).name} at {size} px\n'
        f'kNN top-1 {knn:.1f}% (k={args.k}, T={args.temperature:g}, '
        f'bank images 1-5 / queries 6-10 per class; chance {100 / len(classes):.1f}%)'
    )
    save_embedding_figure(args.out, xy, labels, classes, title)
    result = dict(knn_top1=knn, k=args.k, temperature=args.temperature, images=len(items))
    if args.json:
        result.update(classes=classes, labels=labels.tolist(), paths=paths, xy=xy.tolist())
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f'kNN top-1 {knn:.2f}% (k={args.k}, T={args.temperature:g}); wrote {args.out}')


if __name__ == '__main__':
    torch.set_grad_enabled(False)
    PeraCliErrors.run(main, tool='feature_tsne')
