#!/usr/bin/env python
"""Evaluate a checkpoint with an MMEngine config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE|DIR]
        [--out-item {pred,metrics}] [--show-dir DIR] [--show] [--wait-time S] [--tta]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}] [--debug]

``pera_mm`` is imported first so its modules are registered; the config's
``default_scope`` defaults to ``mmpretrain``.

What MMSeg users type works as in MMSeg's ``tools/test.py``:

- ``--out DIR`` (not a ``.pkl``) with an MMSeg config: the test evaluator writes
  every prediction as a PNG named as its image into DIR (``output_dir`` of the
  metric); ``--out FILE.pkl`` dumps the predictions as pickle, whatever the config;
- ``--show-dir DIR`` / ``--show``: the config's ``visualization`` hook draws the
  predictions (saved under DIR / shown on screen);
- ``--tta``: the dataset's ``tta_pipeline`` and the config's ``tta_model``.

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

import mmengine  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.evaluator import DumpResults  # noqa: E402

import pera_mm  # noqa: E402,F401  (registers pera_mm modules)
from pera_mm.utils.cli import PeraCliErrors, build_and_run, load_config  # noqa: E402
from pera_mm.utils.cpu_dist import setup_cpu_distributed  # noqa: E402
from pera_mm.utils.errors import PeraConfigError, PeraFileNotFoundError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (evaluate) a model', epilog=PeraCliErrors.EPILOG
    )
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and evaluation results')
    parser.add_argument(
        '--out',
        help='dump the predictions (--out-item pred, a .pkl file) or the '
        'metrics (--out-item metrics, .json/.yaml/.pkl) to this file; with an '
        'MMSeg config a path that is not .pkl is a folder for the predicted '
        'label maps (PNG), as in MMSeg',
    )
    parser.add_argument(
        '--out-item',
        choices=['pred', 'metrics'],
        default='pred',
        help='what --out holds (default: pred)',
    )
    parser.add_argument(
        '--show-dir',
        help='folder where the painted predictions are saved (turns on the '
        "config's visualization hook)",
    )
    parser.add_argument('--show', action='store_true', help='show the painted predictions')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds each shown image stays (--show)'
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation: the config's tta_pipeline and tta_model",
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs merged into the '
        'config, e.g. test_dataloader.batch_size=1',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher',
    )
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
    if not osp.isfile(args.checkpoint):
        raise PeraFileNotFoundError(f'checkpoint {args.checkpoint} does not exist')
    return args


def _is_pickle(path: str) -> bool:
    return path.endswith(('.pkl', '.pickle'))


def _evaluator_metrics(evaluator):
    """The metric config dicts of an evaluator config (a dict, a list, or type='Evaluator')."""
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']
    return [evaluator] if isinstance(evaluator, dict) else list(evaluator)


def set_prediction_dir(cfg: Config, out_dir: str) -> None:
    """MMSeg's ``--out DIR``: every test metric writes its predictions (PNG) into ``out_dir``."""
    for metric in _evaluator_metrics(cfg.test_evaluator):
        metric['output_dir'] = out_dir


def trigger_visualization_hook(cfg: Config, args) -> None:
    """Turn on the config's ``visualization`` hook for ``--show`` / ``--show-dir``.

    MMSeg's and MMDet's hooks (``draw``; the visualizer's ``save_dir``) and
    MMPretrain's (``enable``, ``out_dir``) are recognised.
    """
    hook = (cfg.get('default_hooks') or {}).get('visualization')
    if hook is None:
        raise PeraConfigError(
            f'--show/--show-dir: {cfg.filename} has no default_hooks.visualization '
            "(e.g. visualization=dict(type='SegVisualizationHook'))"
        )
    if str(hook.get('type', '')).split('.')[-1] == 'VisualizationHook':  # MMPretrain
        hook['enable'] = True
        if args.show_dir:
            hook['out_dir'] = args.show_dir
    else:
        hook['draw'] = True
        if args.show_dir:
            if cfg.get('visualizer') is None:
                raise PeraConfigError(f'--show-dir: {cfg.filename} has no visualizer')
            cfg.visualizer['save_dir'] = args.show_dir
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time


def enable_tta(cfg: Config) -> None:
    """``--tta``: test with ``tta_pipeline`` through ``tta_model`` wrapping the model."""
    for field in ('tta_pipeline', 'tta_model'):
        if cfg.get(field) is None:
            raise PeraConfigError(
                f'--tta: {cfg.filename} has no {field} (the dataset config gives '
                "tta_pipeline; the runtime gives e.g. tta_model=dict(type='SegTTAModel'))"
            )
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.tta_model.module = cfg.model
    cfg.model = cfg.tta_model


def merge_args(cfg: Config, args) -> Config:
    """Apply the command line to the config (the CLI wins)."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') is None:
        cfg.default_scope = 'mmpretrain'
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    for field in ('test_dataloader', 'test_cfg', 'test_evaluator'):
        if cfg.get(field) is None:
            raise PeraConfigError(
                f'{cfg.filename} has no {field}; '
                'tools/test.py needs all of test_dataloader, '
                'test_cfg and test_evaluator'
            )
    cfg.load_from = args.checkpoint
    if args.out and args.out_item == 'pred' and not _is_pickle(args.out):
        if cfg.default_scope != 'mmseg':
            raise PeraConfigError(
                f'--out {args.out}: predictions are dumped as pickle, expected a .pkl or '
                '.pickle file (a folder of prediction PNGs needs an MMSeg config)'
            )
        set_prediction_dir(cfg, args.out)
    if cfg.default_scope == 'mmseg':
        # testing needs no training setup; MMSeg's SegVisualizationHook asks for
        # runner.iter, which would otherwise build the training loop and its data
        for field in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler'):
            cfg[field] = None
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args)
    if args.tta:
        enable_tta(cfg)
    return cfg


def _test(runner, args):
    if args.out and args.out_item == 'pred' and _is_pickle(args.out):
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        mmengine.dump(metrics, args.out)
    return metrics


def _main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    args.cfg_options = None  # merged above
    cfg = merge_args(cfg, args)
    setup_cpu_distributed(cfg)  # torchrun without a GPU: gloo + CPU DDP
    return build_and_run(cfg, lambda runner: _test(runner, args))


def main(argv=None):
    """Evaluate; report the project's errors as one line with a named exit code."""
    return PeraCliErrors.run(_main, argv, tool='test.py')


if __name__ == '__main__':
    main()
