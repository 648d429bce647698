#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""Score a checkpoint on the fixed representation-quality protocol, with its floors.

    python tools/analysis_tools/knn_probe.py CONFIG [CHECKPOINT] [--sets NAME=DIR ...]
    python tools/analysis_tools/knn_probe.py CONFIG [CHECKPOINT] --data-root DIR

CONFIG is the pretraining config of any supported algorithm (PerA, the
DINOv2-style baseline, MMPretrain's MAE, I-JEPA, LatentMIM); CHECKPOINT a
training checkpoint of it or an extracted backbone. In one run, on every
evaluation set (images 1-5 of each class the bank, 6-10 the queries), the tool
prints cosine kNN top-1 (k=20 and k=1, weights exp(sim/0.07)) and the ridge
linear probe for:

- the checkpoint (left out when no CHECKPOINT is given);
- random init of the same architecture (``--seed``): the floor pretraining must beat;
- a 512-bin colour histogram (8x8x8 RGB, square-rooted): the floor of colour alone.

The protocol (sets, evaluation size, pipeline, k, T, ridge lambda, features) is
the config's own when it evaluates during training (``val_cfg`` of type
``FeatureKNNValLoop``), else configs/_base_/evaluation/knn_aid_rsscn7.py.
See docs/representation_quality.md.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from mmengine.config import Config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import DefaultScope  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

import pera_mm  # noqa: E402,F401
from pera_mm.evaluation import (  # noqa: E402
    colour_histogram,
    mean_pairwise_cosine,
    protocol_scores,
)
from pera_mm.evaluation.bank_query_dataset import BANK  # noqa: E402
from pera_mm.evaluation.eval_checkpoint import load_eval_weights  # noqa: E402
from pera_mm.evaluation.feature_adaptors import (  # noqa: E402
    build_feature_adaptor,
    normalise_rgb,
)
from pera_mm.testing.paths import REPO_ROOT  # noqa: E402
from pera_mm.utils.cli import PeraCliErrors, load_config  # noqa: E402
from pera_mm.utils.errors import PeraConfigError  # noqa: E402

PROTOCOL = REPO_ROOT / 'configs/_base_/evaluation/knn_aid_rsscn7.py'
ARMS = ('checkpoint', 'random-init', 'colour-histogram')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog='knn_probe.py',
        description=__doc__,
        epilog=PeraCliErrors.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('config', help='pretraining config of the checkpoint')
    parser.add_argument('checkpoint', nargs='?', help='training checkpoint or extracted backbone')
    parser.add_argument(
        '--sets',
        nargs='+',
        metavar='NAME=DIR',
        help="evaluation sets (folder per class); default: the protocol's AID_150px and RSSCN7",
    )
    parser.add_argument(
        '--data-root',
        metavar='DIR',
        help='one evaluation set, named after the folder (shorthand for --sets NAME=DIR)',
    )
    parser.add_argument(
        '--img-size',
        type=int,
        help="evaluation size (a multiple of the patch size); default: the protocol's 112",
    )
    parser.add_argument(
        '--pool',
        choices=('cls', 'mean'),
        help="features: cls token or patch mean (default: the family's)",
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the random-init floor')
    parser.add_argument('--batch-size', type=int, default=50)
    parser.add_argument('--num-workers', type=int, default=0)
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def protocol_of(cfg):
    """(dataloader template, sets, metric config, adaptor config) of the config or the default."""
    val_cfg = cfg.get('val_cfg') or {}
    source = cfg if val_cfg.get('type') == 'FeatureKNNValLoop' else Config.fromfile(PROTOCOL)
    loader = copy.deepcopy(source.val_dataloader.to_dict())
    sets = {k: dict(v) for k, v in source.val_cfg.sets.items()}
    return loader, sets, dict(source.val_evaluator), source.val_cfg.get('feature_adaptor')


def resolve_root(root: str) -> str:
    """A relative set folder: from the working directory, else from the repository root."""
    path = Path(root)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        return str(REPO_ROOT / path)
    return root


def parse_sets(items):
    sets = {}
    for item in items:
        name, sep, root = item.partition('=')
        if not sep or not name or not root or '/' in name:
            raise PeraConfigError(f'--sets: expected NAME=DIR, got {item!r}')
        sets[name] = dict(data_root=root)
    return sets


def set_img_size(pipeline, size: int):
    resizes = [t for t in pipeline if t['type'] == 'Resize']
    if not resizes:
        raise PeraConfigError('--img-size: the evaluation pipeline has no Resize step')
    for t in resizes:
        t['scale'] = (size, size)


def build_model(cfg, seed: int):
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model.eval()


def main_(argv=None):
    args = parse_args(argv)
    # keep the weight-initialisation report of the model builds off the output
    MMLogger.get_instance(f'knn_probe-{time.time()}', log_level='WARNING')
    cfg = load_config(args.config)
    loader_cfg, sets, metric_cfg, adaptor_cfg = protocol_of(cfg)
    if args.data_root:
        name = Path(args.data_root.rstrip('/')).name.lower().replace('/', '_') or 'set'
        args.sets = [*(args.sets or []), f'{name}={args.data_root}']
    if args.sets:
        sets = parse_sets(args.sets)
    adaptor_cfg = dict(adaptor_cfg or dict(type='auto'))
    if args.pool:
        adaptor_cfg['pool'] = args.pool
    if args.img_size:
        set_img_size(loader_cfg['dataset']['pipeline'], args.img_size)
    loader_cfg.update(batch_size=args.batch_size, num_workers=args.num_workers)
    loader_cfg['persistent_workers'] = False
    ks = tuple(metric_cfg.get('ks', (20, 1)))
    temperature = metric_cfg.get('temperature', 0.07)
    ridge_lambda = metric_cfg.get('ridge_lambda', 1.0)

    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        models = {'random-init': build_model(cfg, args.seed)}
        adaptor = build_feature_adaptor(adaptor_cfg, models['random-init'])
        loaded = None
        if args.checkpoint:
            models['checkpoint'] = build_model(cfg, args.seed)
            loaded = load_eval_weights(models['checkpoint'], adaptor, args.checkpoint)
        loaders = {}
        for name, overrides in sets.items():
            one = copy.deepcopy(loader_cfg)
            one['dataset'].update(overrides)
            one['dataset']['data_root'] = resolve_root(one['dataset']['data_root'])
            loaders[name] = Runner.build_dataloader(one)

    results = {}
    total = sum(len(loader) for loader in loaders.values())
    with tqdm(total=total, desc='knn_probe', unit='batch', file=sys.stderr) as bar:
        for name, loader in loaders.items():
            feats = {arm: [] for arm in (*models, 'colour-histogram')}
            labels, is_bank = [], []
            for batch in loader:
                for arm, model in models.items():
                    feats[arm].append(adaptor(model, normalise_rgb(model, batch['inputs'])))
                feats['colour-histogram'].append(colour_histogram(batch['inputs']))
                labels += [int(s.gt_label[0]) for s in batch['data_samples']]
                is_bank += [s.split == BANK for s in batch['data_samples']]
                bar.set_postfix_str(name)
                bar.update()
            labels, bank = torch.tensor(labels), torch.tensor(is_bank)
            classes = len(loader.dataset.metainfo['classes'])
            results[name] = dict(
                classes=classes,
                bank=int(bank.sum()),
                queries=int((~bank).sum()),
                chance=100.0 / classes,
            )
            for arm in ARMS:
                if arm not in feats:
                    continue
                f = torch.cat(feats[arm])
                results[name][arm] = protocol_scores(
                    f[bank], labels[bank], f[~bank], labels[~bank], ks, temperature, ridge_lambda
                )
                # near 1 = collapsed features (a diagnostic, not part of the protocol)
                results[name][arm]['mean_cosine'] = mean_pairwise_cosine(f)

    report = dict(
        config=args.config,
        checkpoint=args.checkpoint,
        loaded=loaded,
        features=adaptor.describe(),
        protocol=dict(ks=list(ks), temperature=temperature, ridge_lambda=ridge_lambda),
        sets={name: dict(sets[name]) for name in sets},
        seed=args.seed,
        results=results,
    )
    print_table(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


def print_table(report):
    print(
        f'features: {report["features"]}'
        + (f'; loaded: {report["loaded"]}' if report['loaded'] else '')
    )
    keys = None
    for name, res in report['results'].items():
        arms = [a for a in ARMS if a in res]
        keys = keys or list(res[arms[0]])
        print(
            f'\n{name}: {res["classes"]} classes, {res["bank"]} bank / {res["queries"]} queries, '
            f'chance {res["chance"]:.1f}%'
        )
        print(f'  {"":18s}' + ''.join(f'{k:>15s}' for k in keys))
        for arm in arms:
            row = ''.join(f'{res[arm][k]:15.1f}' for k in keys if k != 'mean_cosine')
            print(f'  {arm:18s}{row}{res[arm]["mean_cosine"]:15.3f}')


def main(argv=None):
    return PeraCliErrors.run(main_, argv, tool='knn_probe.py')


if __name__ == '__main__':
    main()
