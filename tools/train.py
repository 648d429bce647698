#!/usr/bin/env python
"""Train a model from an MMEngine config (PerA pretraining or downstream).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--no-validate] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]

``pera_mm`` is imported first so its modules are registered; the config's
``default_scope`` defaults to ``mmpretrain``.

Configuration and data errors of the project (and errors in the config file
itself) are reported as one line on stderr with a named exit code (see
``--help``); ``--debug`` or ``PERA_MM_DEBUG=1`` shows their traceback.
"""

import argparse
import importlib.util
import os
import os.path as osp
import sys

if importlib.util.find_spec('pera_mm') is None:  # run from a source checkout
    sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402

import pera_mm  # noqa: E402,F401  (registers pera_mm modules)
from pera_mm.utils.cli import PeraCliErrors, build_and_run, load_config  # noqa: E402
from pera_mm.utils.cpu_dist import setup_cpu_distributed  # noqa: E402
from pera_mm.utils.errors import PeraConfigError, PeraFileNotFoundError  # noqa: E402

AMP_WRAPPERS = ('AmpOptimWrapper', 'AutoAmpOptimWrapper')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model', epilog=PeraCliErrors.EPILOG)
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, resume from the '
        'latest checkpoint in the work directory',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision: use AutoAmpOptimWrapper (AMP on GPU/NPU, full precision on CPU)',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual / base batch size '
        '(needs auto_scale_lr.base_batch_size in the config)',
    )
    parser.add_argument(
        '--no-validate', action='store_true', help='skip validation during training'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs merged into the '
        'config, e.g. train_cfg.max_iters=10 or key="[a,b]"',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or
    # --local_rank (older); torchrun sets LOCAL_RANK instead.
    parser.add_argument(
        '--debug',
        action='store_true',
        help='show the full traceback of configuration and data errors (also PERA_MM_DEBUG=1)',
    )
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise PeraFileNotFoundError(f'config file {args.config} does not exist')
    if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
        raise PeraFileNotFoundError(f'--resume checkpoint {args.resume} does not exist')
    return args


def enable_amp(cfg: Config) -> None:
    """Switch ``cfg.optim_wrapper`` to :class:`AutoAmpOptimWrapper`."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in AMP_WRAPPERS:
        return
    if wrapper != 'OptimWrapper':
        raise PeraConfigError(
            f'--amp: optim_wrapper.type={wrapper!r} in '
            f'{cfg.filename} cannot be switched to '
            "AutoAmpOptimWrapper (expected 'OptimWrapper')"
        )
    cfg.optim_wrapper.type = 'AutoAmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def merge_args(cfg: Config, args) -> Config:
    """Apply the command line to the config (the CLI wins)."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') is None:
        cfg.default_scope = 'mmpretrain'

    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if cfg.get('optim_wrapper') is None:
            raise PeraConfigError(f'--amp: {cfg.filename} has no optim_wrapper')
        enable_amp(cfg)

    if args.auto_scale_lr:
        if (cfg.get('auto_scale_lr') or {}).get('base_batch_size') is None:
            raise PeraConfigError(
                f'--auto-scale-lr: {cfg.filename} needs auto_scale_lr=dict(base_batch_size=...)'
            )
        cfg.auto_scale_lr.enable = True

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    # resume: an explicit checkpoint, or the latest one in work_dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def _main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    args.cfg_options = None  # merged above
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg)  # torchrun without a GPU: gloo + CPU DDP
    build_and_run(cfg, lambda runner: runner.train())


def main(argv=None):
    """Train; report the project's errors as one line with a named exit code."""
    return PeraCliErrors.run(_main, argv, tool='train.py')


if __name__ == '__main__':
    main()
