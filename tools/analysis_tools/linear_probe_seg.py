#!/usr/bin/env python
"""Linear-probe segmentation of a pretrained encoder over several seeds (mIoU mean ± std).

    python tools/analysis_tools/linear_probe_seg.py CONFIG CHECKPOINT [--data-root DIR] \
        [--seeds 0 1 2] [--work-dir DIR] [--json OUT.json]

CONFIG is a configs/linear_probe/ config (a frozen encoder + PatchLinearSegHead);
CHECKPOINT is loaded into the encoder through its ``init_cfg`` (type Pretrained). Without
CHECKPOINT the randomly initialised encoder is probed, the baseline a pretraining must
beat. Each seed trains the head from scratch (seeded init and data order), then tests on
the config's test split; the tool prints every seed's mIoU and the mean ± sample std
(ddof = 1), checks that the encoder's weights are bitwise unchanged by the training, and
writes all of it as JSON with --json. --data-root replaces the data_root of the three
dataloaders and, for the GEO-Bench configs, of ``model.band_stats`` (the task's
band_stats.json gives the normalisation).
"""

import argparse
import copy
import importlib.util
import json
import os.path as osp
import statistics
import sys
from pathlib import Path

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.hooks import Hook  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pera_mm.utils.cli import PeraCliErrors, build_and_run, load_config  # noqa: E402
from pera_mm.utils.errors import (  # noqa: E402
    PeraConfigError,
    PeraFileNotFoundError,
    PeraTrainingStopped,
)

SPLITS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class FrozenBackboneCheck(Hook):
    """Records the backbone's tensors when training starts and compares them at its end."""

    priority = 'VERY_LOW'

    def __init__(self):
        self.before, self.unchanged = None, None

    @staticmethod
    def _backbone(runner):
        model = runner.model
        return getattr(model, 'module', model).backbone

    def before_train(self, runner) -> None:
        state = self._backbone(runner).state_dict()
        self.before = {k: v.detach().clone() for k, v in state.items()}

    def after_train(self, runner) -> None:
        state = self._backbone(runner).state_dict()
        self.unchanged = state.keys() == self.before.keys() and all(
            torch.equal(state[k], self.before[k]) for k in state
        )


def probe_config(cfg, checkpoint, seed: int, work_dir: str, data_root=None):
    """The config of one seed's run: seed, work dir, encoder checkpoint, data root."""
    cfg = copy.deepcopy(cfg)
    cfg.randomness = dict(seed=seed, deterministic=False)
    cfg.work_dir = work_dir
    init = cfg.model.backbone.get('init_cfg')
    if checkpoint is not None:
        init = dict(init or dict(type='Pretrained'))
        init['checkpoint'] = checkpoint
        cfg.model.backbone.init_cfg = init
    elif init and init.get('type') == 'Pretrained' and not init.get('checkpoint'):
        cfg.model.backbone.init_cfg = None  # the random-init baseline
    if data_root is not None:
        for split in SPLITS:
            if split in cfg and cfg[split] is not None:
                cfg[split].dataset.data_root = data_root
        if cfg.model.get('band_stats') is not None:  # GEO-Bench: <data_root>/band_stats.json
            cfg.model.band_stats.data_root = data_root
    return cfg


def run_seed(cfg) -> dict:
    """Train the head and test it; mIoU, sample counts and the frozen-encoder check."""
    check = FrozenBackboneCheck()

    def run(runner):
        runner.register_hook(check)
        runner.train()
        metrics = runner.test()
        return dict(
            mIoU=float(metrics['mIoU']),
            aAcc=float(metrics.get('aAcc', float('nan'))),
            IoU_per_class={k[4:]: float(v) for k, v in metrics.items() if k.startswith('IoU.')},
            train_samples=len(runner.train_dataloader.dataset),
            test_samples=len(runner.test_dataloader.dataset),
            iterations=runner.iter,
        )

    result = build_and_run(cfg, run)
    if not check.unchanged:
        raise PeraTrainingStopped(
            f'{cfg.filename}: the encoder changed during linear probing (it must stay frozen)'
        )
    result['backbone_unchanged'] = True
    return result


def summarise(values):
    """(mean, sample std with ddof = 1; 0 for one value)."""
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Linear-probe segmentation over several seeds (mIoU mean ± std)',
        epilog=PeraCliErrors.EPILOG,
    )
    parser.add_argument('config', help='a configs/linear_probe/ config')
    parser.add_argument('checkpoint', nargs='?', help='encoder checkpoint (omit: random init)')
    parser.add_argument('--data-root', help='data_root of the train/val/test datasets')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='seeds to run')
    parser.add_argument('--work-dir', default=None, help='default: work_dirs/<config name>')
    parser.add_argument('--json', help='also write the results to this file')
    parser.add_argument('--log-level', default='WARNING', help="the runs' log level")
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override config settings'
    )
    parser.add_argument('--debug', action='store_true', help='show tracebacks of our errors')
    return parser.parse_args(argv)


def _main(argv=None):
    args = parse_args(argv)
    if args.checkpoint is not None and not osp.isfile(args.checkpoint):
        raise PeraFileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    if args.data_root is not None and not osp.isdir(args.data_root):
        raise PeraFileNotFoundError(f'--data-root {args.data_root} is not a folder')
    if len(set(args.seeds)) != len(args.seeds):
        raise PeraConfigError(f'--seeds repeats a seed: {args.seeds}')
    cfg = load_config(args.config, args.cfg_options)
    cfg.log_level = args.log_level
    work_root = args.work_dir or osp.join('work_dirs', Path(args.config).stem)
    runs = []
    for seed in tqdm(args.seeds, desc='linear probe', unit='seed'):
        seed_cfg = probe_config(
            cfg, args.checkpoint, seed, osp.join(work_root, f'seed_{seed}'), args.data_root
        )
        result = dict(seed=seed, **run_seed(seed_cfg))
        runs.append(result)
        tqdm.write(
            f'seed {seed}: mIoU {result["mIoU"]:.2f} (aAcc {result["aAcc"]:.2f}; '
            f'{result["train_samples"]} train / {result["test_samples"]} test samples, '
            f'{result["iterations"]} iterations, encoder unchanged)'
        )
    mean, std = summarise([r['mIoU'] for r in runs])
    summary = dict(
        config=args.config,
        checkpoint=args.checkpoint or 'random-init',
        seeds=args.seeds,
        mIoU=[r['mIoU'] for r in runs],
        mIoU_mean=mean,
        mIoU_std=std,
        runs=runs,
    )
    values = ', '.join(f'{r["mIoU"]:.2f}' for r in runs)
    print(f'mIoU over {len(runs)} seeds: {mean:.2f} ± {std:.2f} (sample std) [{values}]')
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return summary


def main(argv=None):
    return PeraCliErrors.run(_main, argv, tool=osp.basename(__file__))


if __name__ == '__main__':
    main()
