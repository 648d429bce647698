# Copyright (c) pera-mm contributors. All rights reserved.
"""Pool lock-step runs of ``train_step.py --against-commit C --lockstep``.

One 30-step lock-step run on a shared VM spreads by several per cent around the
ratio it measures. This script reads several runs of the same protocol (same
commit, shapes, threads and step count), and reports:

- each run's ratio (its reference mean step / its current mean step);
- the pooled ratio: the mean of every reference step over the mean of every
  current step (runs of equal length weigh alike);
- a 95 % interval of the pooled ratio from a bootstrap over runs (whole runs are
  resampled, since the steps of one run share that run's machine state);
- how many runs, and what share of the bootstrap, reach ``--target``.

Example::

    python benchmarks/pool_lockstep.py \\
        benchmarks/results/train_step_vs_90204a9_lockstep30_pack_clip*_cpu.json --target 1.25
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Sequence

import _common as C
import numpy as np

#: protocol fields that must agree between the pooled runs
_SAME = ('build', 'threads', 'steps', 'warmup')
#: the two sides whose mean steps make the ratio
SIDES = ('reference', 'current')


class PoolError(ValueError):
    """A run file that cannot be pooled with the others (one line, names the file)."""


def load_runs(paths: Sequence[str]) -> List[dict]:
    """The lock-step payloads of ``paths``; all of one commit and one protocol."""
    if len(paths) < 2:
        raise PoolError(f'expected at least 2 lock-step run files, got {len(paths)}')
    runs = []
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text())
            mode = payload['protocol']['mode']
            steps = {side: payload['summary'][side]['step_times_s'] for side in SIDES}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PoolError(f'{path}: not a lock-step result of train_step.py ({e!r})') from None
        if mode != 'lockstep':
            raise PoolError(f'{path}: protocol mode is {mode!r}, expected lockstep')
        if runs:
            first = runs[0]
            if payload['commit'] != first['commit']:
                raise PoolError(
                    f'{path}: reference commit {payload["commit"][:8]}, but '
                    f'{first["path"]} has {first["commit"][:8]}'
                )
            for key in _SAME:
                if payload['protocol'].get(key) != first['protocol'].get(key):
                    raise PoolError(
                        f'{path}: protocol {key} is {payload["protocol"].get(key)!r}, but '
                        f'{first["path"]} has {first["protocol"].get(key)!r}'
                    )
        runs.append(
            dict(
                path=str(path),
                commit=payload['commit'],
                protocol=payload['protocol'],
                load_start=payload['meta'].get('loadavg_start', [None])[0],
                reference=np.asarray(steps['reference'], dtype=float),
                current=np.asarray(steps['current'], dtype=float),
            )
        )
    return runs


def pooled_means(runs: Sequence[dict]):
    """Mean of every reference step and mean of every current step of ``runs``."""
    return tuple(float(np.concatenate([r[side] for r in runs]).mean()) for side in SIDES)


def pooled_ratio(runs: Sequence[dict]) -> float:
    """Mean of every reference step over the mean of every current step."""
    ref, cur = pooled_means(runs)
    return ref / cur


def pool(runs: Sequence[dict], target: float, resamples: int = 10000, seed: int = 0) -> dict:
    """Per-run ratios, the pooled ratio, its bootstrap interval over runs, the target's share."""
    means = [pooled_means([r]) for r in runs]
    ratios = [ref / cur for ref, cur in means]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(runs), size=(resamples, len(runs)))
    boot = np.array([pooled_ratio([runs[i] for i in pick]) for pick in picks])
    low, high = np.percentile(boot, [2.5, 97.5])
    ref, cur = pooled_means(runs)
    return dict(
        commit=runs[0]['commit'],
        protocol=runs[0]['protocol'],
        runs=[
            dict(
                path=r['path'],
                load_start=r['load_start'],
                reference_mean_s=ref,
                current_mean_s=cur,
                ratio=ref / cur,
            )
            for r, (ref, cur) in zip(runs, means)
        ],
        pooled_reference_mean_s=ref,
        pooled_current_mean_s=cur,
        pooled_ratio=ref / cur,
        run_ratio_mean=float(np.mean(ratios)),
        run_ratio_sd=float(np.std(ratios, ddof=1)),
        bootstrap=dict(resamples=resamples, seed=seed, ci95=[float(low), float(high)]),
        target=target,
        runs_at_target=sum(r >= target for r in ratios),
        bootstrap_share_at_target=float((boot >= target).mean()),
    )


def print_pool(res: dict) -> None:
    rows = [
        (
            Path(r['path']).name,
            r['load_start'],
            f'{r["reference_mean_s"]:.3f}',
            f'{r["current_mean_s"]:.3f}',
            f'{r["ratio"]:.3f}',
        )
        for r in res['runs']
    ]
    print(C.table(rows, ('run', 'load at start', 'reference s', 'current s', 'ratio')))
    low, high = res['bootstrap']['ci95']
    print(
        f'\npooled {res["commit"][:8]} / current = {res["pooled_ratio"]:.3f} '
        f'({res["pooled_reference_mean_s"]:.3f} s / {res["pooled_current_mean_s"]:.3f} s); '
        f'95 % bootstrap over runs {low:.3f}-{high:.3f}'
    )
    print(
        f'run ratios {res["run_ratio_mean"]:.3f} +- {res["run_ratio_sd"]:.3f} (sd); '
        f'{res["runs_at_target"]} of {len(res["runs"])} runs >= {res["target"]}; '
        f'{res["bootstrap_share_at_target"]:.0%} of the bootstrap >= {res["target"]}'
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('runs', nargs='+', help='JSON files of train_step.py --lockstep runs')
    p.add_argument('--target', type=float, default=1.25, help='the ratio to reach (1.25)')
    p.add_argument('--resamples', type=int, default=10000, help='bootstrap resamples (10000)')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args(argv)
    try:
        res = pool(load_runs(args.runs), args.target, args.resamples)
    except PoolError as e:
        print(f'pool_lockstep: {e}', file=sys.stderr)
        return 2
    print_pool(res)
    if args.out:
        C.write_json(args.out, dict(meta=dict(command=' '.join(sys.argv)), **res))
    return 0


if __name__ == '__main__':
    sys.exit(main())
