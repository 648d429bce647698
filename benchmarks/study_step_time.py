#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""Interleaved step-time measurement of the CPU-budget study configs (issue 21, Part B).

Each (config, round) runs in a fresh process: the config's own Runner trains
``--warmup + --iters`` iterations with evaluation and checkpoints off, and the
wall time between consecutive ``after_train_iter`` calls (data wait included,
as in a real run) is recorded after the warm-up. The configs are interleaved
(A B C A B C ...) so that drifts of a shared machine hit every method alike;
the load average is recorded around every process. The per-method median step
time sets the iteration count of an equal-wall-time budget.

The measured processes use ``--threads`` torch / OMP threads (1 in the
committed measurement: on the loaded 2-core machine, 2 threads per process
measured thread-scheduling stalls of 4-26 s per step rather than the methods).
``--budget-from NAME=ITERS`` makes the budget ITERS steps of one method (PerA's
whole epochs) instead of ``--budget-minutes``; ``--summarise JSON`` recomputes
the iteration counts of an earlier measurement without measuring again.

Example (the committed measurement)::

    python benchmarks/study_step_time.py --threads 1 --rounds 2 --warmup 3 --iters 15 \\
        --out benchmarks/results/study_step_time.json
    python benchmarks/study_step_time.py --summarise benchmarks/results/study_step_time.json \\
        --budget-from pera=330 --out benchmarks/results/study_step_time.json
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = {
    'pera': 'configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py',
    'dinov2_baseline': (
        'configs/pera/ablations/'
        'dinov2-baseline_vit-tiny-p16_1xb32-184iter_aid-unlabeled-96px_cpu-budget.py'
    ),
    'mae': 'configs/mae/mae_vit-tiny-p16_1xb32-803iter_aid-unlabeled-112px_cpu-budget.py',
}


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        '--configs',
        nargs='+',
        default=None,
        metavar='NAME=CONFIG',
        help='methods to time (default: the three study configs)',
    )
    p.add_argument('--warmup', type=int, default=5, help='iterations not timed (default 5)')
    p.add_argument('--iters', type=int, default=15, help='timed iterations (default 15)')
    p.add_argument('--rounds', type=int, default=2, help='interleaved rounds (default 2)')
    p.add_argument('--threads', type=int, default=2, help='torch / OMP threads (default 2)')
    p.add_argument('--budget-minutes', type=float, default=12.0, help='wall-time budget per run')
    p.add_argument(
        '--budget-from',
        metavar='NAME=ITERS',
        default=None,
        help='instead: the budget is ITERS steps of method NAME (e.g. an epoch-rounded count)',
    )
    p.add_argument(
        '--summarise',
        type=Path,
        default=None,
        metavar='JSON',
        help='recompute the budget from an earlier measurement instead of measuring',
    )
    p.add_argument('--out', type=Path, default=None, help='JSON result file')
    p.add_argument('--worker', nargs=2, metavar=('CONFIG', 'JSON'), help=argparse.SUPPRESS)
    return p


def run_worker(config, out_json, warmup, iters, threads):
    """Train ``warmup + iters`` iterations of ``config`` and write the step times."""
    import torch
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    torch.set_num_threads(threads)

    class StepClock(Hook):
        def __init__(self):
            self.stamps = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.stamps.append(time.perf_counter())

    cfg = Config.fromfile(config)
    cfg.work_dir = tempfile.mkdtemp(prefix='study_step_time_')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=warmup + iters)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=10**9, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**9)
    cfg.log_processor = dict(by_epoch=False)
    runner = Runner.from_cfg(cfg)
    clock = StepClock()
    runner.register_hook(clock, priority='LOWEST')
    runner.train()
    deltas = [b - a for a, b in zip(clock.stamps[warmup - 1 :], clock.stamps[warmup:])]
    Path(out_json).write_text(json.dumps({'step_s': deltas}))


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.worker:
        run_worker(*args.worker, args.warmup, args.iters, args.threads)
        return 0
    from tqdm import tqdm

    configs = dict(DEFAULT_CONFIGS)
    if args.configs:
        configs = {}
        for item in args.configs:
            name, sep, path = item.partition('=')
            if not sep or not name or not path:
                print(f'error: --configs expects NAME=CONFIG, got {item!r}', file=sys.stderr)
                return 2
            configs[name] = path
    for name, path in configs.items():
        if not (REPO_ROOT / path).is_file() and not Path(path).is_file():
            print(f'error: config of {name!r} not found: {path}', file=sys.stderr)
            return 2
    if args.warmup < 1 or args.iters < 2:
        print('error: --warmup must be >= 1 and --iters >= 2', file=sys.stderr)
        return 2

    if args.summarise:
        if not args.summarise.is_file():
            print(f'error: --summarise: no such file: {args.summarise}', file=sys.stderr)
            return 2
        earlier = json.loads(args.summarise.read_text())
        runs, jobs = earlier['runs'], [(r['round'], r['method']) for r in earlier['runs']]
        if set(configs) != set(earlier['summary']):
            print(
                f'error: --summarise: methods {sorted(earlier["summary"])} measured, '
                f'{sorted(configs)} given',
                file=sys.stderr,
            )
            return 2
        args.threads, args.warmup, args.iters = (
            earlier['threads'],
            earlier['warmup'],
            earlier['iters'],
        )
        args.rounds, date = earlier['rounds'], earlier['date']
        return summarise(args, configs, runs, jobs, date)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    runs = []
    jobs = [(r, n) for r in range(args.rounds) for n in configs]
    for rnd, name in tqdm(jobs, desc='step time', unit='run'):
        with tempfile.NamedTemporaryFile(suffix='.json', delete=False) as f:
            tmp = f.name
        load_before = os.getloadavg()
        cmd = [sys.executable, __file__, '--worker', configs[name], tmp]
        cmd += ['--warmup', str(args.warmup), '--iters', str(args.iters)]
        cmd += ['--threads', str(args.threads)]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ['(no output)']
            print(f'error: {name} round {rnd} failed: {tail[0]}', file=sys.stderr)
            return 1
        steps = json.loads(Path(tmp).read_text())['step_s']
        os.unlink(tmp)
        runs.append(
            dict(
                method=name,
                round=rnd,
                step_s=steps,
                median_s=statistics.median(steps),
                load_before=load_before,
                load_after=os.getloadavg(),
            )
        )
        med = runs[-1]['median_s']
        tqdm.write(f'{name} round {rnd}: median {med:.3f} s/step, load {load_before[0]:.1f}')

    return summarise(
        args, configs, runs, jobs, time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())
    )


def summarise(args, configs, runs, jobs, date):
    """Per-method medians, the budget and each method's iteration count; print and save."""
    medians = {
        name: statistics.median([s for r in runs if r['method'] == name for s in r['step_s']])
        for name in configs
    }
    budget_s = args.budget_minutes * 60
    if args.budget_from:
        name, _, iters = args.budget_from.partition('=')
        if name not in medians or not iters.isdigit():
            print(
                f'error: --budget-from expects NAME=ITERS with NAME in {sorted(medians)}',
                file=sys.stderr,
            )
            return 2
        budget_s = int(iters) * medians[name]
    summary = {}
    for name, path in configs.items():
        steps = [s for r in runs if r['method'] == name for s in r['step_s']]
        med = medians[name]
        summary[name] = dict(
            config=path,
            median_step_s=med,
            mean_step_s=statistics.fmean(steps),
            per_round_median_s=[r['median_s'] for r in runs if r['method'] == name],
            iters_for_budget=round(budget_s / med),
        )
    result = dict(
        date=date,
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        rounds=args.rounds,
        budget_minutes=budget_s / 60,
        budget_from=args.budget_from,
        order='interleaved: ' + ' '.join(n for _, n in jobs),
        summary=summary,
        runs=runs,
    )
    print(f'{"method":<18} {"median s/step":>14} {"iters in budget":>16}')
    for name, s in summary.items():
        print(f'{name:<18} {s["median_step_s"]:>14.3f} {s["iters_for_budget"]:>16}')
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
