# Copyright (c) pera-mm contributors. All rights reserved.
"""The PerA step of this tree against the step of an older commit (issue 23's protocol).

``train_step.py --against-commit COMMIT`` lands here. The commit is checked out
into a temporary directory (:class:`_commit_worktree.CommitCheckout`); every run is
a fresh process of ``step_protocol_worker.py`` with ITS tree as working directory
and import root, so the commit's run builds the commit's model from the commit's
configs, unmodified, and ``pera_mm.__file__`` (recorded per run) lies in the
checkout. The protocol:

- the same ``warmup + steps`` distinct batches for every run (made once by this
  tree's pipeline; none reused within a run), the same thread count;
- runs interleaved by rounds, ``reference, current, [variants]`` then reversed,
  so a drift of the machine hits both sides alike;
- the MEAN over the timed steps (a multiple of the collapse-monitor interval,
  which is 1 in both trees: every step is monitored), never a median;
- the ratio = mean reference step / mean current step, over all rounds, with the
  per-round ratios beside it; peak RSS of the current tree / the reference's;
- variants of this tree run in the same rounds and stay out of the ratio:
  ``switches_off`` (the issue-23 switches at their earlier forms: what they bought),
  ``adamw_foreach`` (AdamW's multi-tensor path), ``bf16`` (CPU bf16 autocast) and
  ``compile`` (``torch.compile``; the first step, which compiles, is reported
  apart and not in the mean). Variants run in the first ``variant_rounds``
  rounds and are compared with the current tree's runs of those rounds.

:func:`trajectory` runs both trees for a few steps from the same weights and
batches (drop path 0) and returns their losses, for the equivalence test.
"""

import json
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import _commit_worktree as W
import _common as C
from tqdm import tqdm

PROTOCOL_WORKER = Path(__file__).resolve().parent / 'step_protocol_worker.py'
#: the issue's shapes at ViT-S
ISSUE_SHAPES = dict(
    method='pera',
    arch='small',
    img_size=224,
    local_size=96,
    num_local=8,
    prototypes=4096,
    mask_ratios=[0.2, 0.2, 0.6],
    batch=8,
    seed=0,
)
#: variants of this tree: (worker spec overrides, build overrides)
VARIANTS = {
    'switches_off': dict(
        optim_wrapper=dict(nonfinite_check='per_grad'),
        model_attrs={'ema_update': 'mul_add', 'backbone.mask_token_insert': 'gather'},
    ),
    'bf16': dict(optim_wrapper=dict(cpu_bf16=True)),
    'adamw_foreach': dict(optim_wrapper=dict(optimizer=dict(foreach=True))),
    'compile': dict(build=dict(method='pera_compile')),
}


def _run(tree, spec, commit=None, timeout=None) -> dict:
    argv = [json.dumps(spec)]
    run = W.run_worker(tree, str(PROTOCOL_WORKER), argv, commit=commit, timeout=timeout)
    if run['returncode'] != 0 or run['result'] is None:
        lines = (run['stderr'] or run['stdout']).strip().splitlines() or ['no output']
        raise W.CommitCheckoutError(
            f'the protocol worker failed in {tree} (exit {run["returncode"]}): {lines[-1]}'
        )
    run.pop('stdout')
    run['stderr'] = run['stderr'][-1000:]
    return run


def make_inputs(workdir: Path, build: dict, count: int, state: bool = False) -> Dict[str, str]:
    """This tree's ``count`` distinct batches (and initial weights) saved under ``workdir``."""
    files = dict(batches=str(workdir / 'batches.pt'))
    if state:
        files['state'] = str(workdir / 'state.pt')
    _run(C.REPO, dict(mode='batches', build=build, count=count, **files))
    return files


def _variant_spec(base: dict, name: str) -> dict:
    spec = json.loads(json.dumps(base))
    extra = VARIANTS[name]
    spec['build'].update(extra.get('build', {}))
    spec['optim_wrapper'] = dict(extra.get('optim_wrapper', {}))
    spec['model_attrs'] = dict(extra.get('model_attrs', {}))
    return spec


def run_order(rounds: int, variants: Sequence[str], variant_rounds: Optional[int] = None):
    """``(round, side)`` in run order: ``reference, current, *variants``, reversed
    every other round; variants only in the first ``variant_rounds`` rounds."""
    variant_rounds = rounds if variant_rounds is None else variant_rounds
    order = []
    for r in range(rounds):
        sides = ['reference', 'current', *(variants if r < variant_rounds else ())]
        order += [(r, side) for side in (sides if r % 2 == 0 else sides[::-1])]
    return order


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def summarise(runs: Dict[str, List[dict]]) -> dict:
    """Mean step time per side, the ratio, per-round ratios and the RSS ratio."""
    out = {}
    for side, rs in runs.items():
        res = [r['result'] for r in rs]
        out[side] = dict(
            mean_step_s=_mean([r['mean_step_s'] for r in res]),
            run_means_s=[r['mean_step_s'] for r in res],
            first_step_s=[r['first_step_s'] for r in res],
            own_cores=[round(r['own_cores'], 3) for r in res],
            peak_rss_mb=_mean([r['peak_rss_mb'] for r in res]),
            peak_rss_delta_mb=_mean([r['peak_rss_delta_mb'] for r in res]),
            losses_finite=all(r['losses_finite'] for r in res),
        )
    ref, cur = out['reference'], out['current']
    out['ratio'] = ref['mean_step_s'] / cur['mean_step_s']
    out['round_ratios'] = [
        a['result']['mean_step_s'] / b['result']['mean_step_s']
        for a, b in zip(runs['reference'], runs['current'])
    ]
    out['peak_rss_ratio'] = cur['peak_rss_mb'] / ref['peak_rss_mb']
    out['peak_rss_delta_ratio'] = cur['peak_rss_delta_mb'] / ref['peak_rss_delta_mb']
    current_by_round = {r['round']: r['result']['mean_step_s'] for r in runs['current']}
    for side, rs in runs.items():  # > 1: the variant is slower than the current default
        if side not in ('reference', 'current'):
            same_rounds = [current_by_round[r['round']] for r in rs]
            out[f'{side}_over_current'] = out[side]['mean_step_s'] / _mean(same_rounds)
    return out


def compare(
    commit: str,
    rounds: int = 3,
    warmup: int = 2,
    steps: int = 10,
    threads: int = 2,
    variants: Sequence[str] = ('switches_off',),
    variant_rounds: Optional[int] = None,
    build: Optional[dict] = None,
    momentum: float = 0.999,
    timeout: Optional[float] = None,
) -> dict:
    """The interleaved comparison (see the module notes); returns the JSON payload."""
    build = dict(ISSUE_SHAPES if build is None else build)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(
            f'--variants: unknown {sorted(unknown)}; expected some of {list(VARIANTS)}'
        )
    base = dict(mode='time', build=build, warmup=warmup, steps=steps, threads=threads)
    base['momentum'] = momentum
    meta = C.machine_info()
    order = run_order(rounds, variants, variant_rounds)
    tmp_dir = tempfile.TemporaryDirectory(prefix='pera-protocol-')
    with W.CommitCheckout(commit) as co, tmp_dir as tmp:
        base.update(make_inputs(Path(tmp), build, warmup + steps))
        specs = {'reference': base, 'current': base}
        specs.update({v: _variant_spec(base, v) for v in variants})
        runs = {side: [] for side in specs}
        for rnd, side in tqdm(order, desc=f'{co.commit[:8]} vs current', unit='run'):
            ref = side == 'reference'
            run = _run(
                co.path if ref else C.REPO,
                specs[side],
                commit=co.commit if ref else None,
                timeout=timeout,
            )
            run['side'], run['round'] = side, rnd
            runs[side].append(run)
            tqdm.write(f'  {side}: mean step {run["result"]["mean_step_s"]:.3f} s')
    meta['loadavg_end'] = C.loadavg()
    return dict(
        meta=meta,
        commit=co.commit,
        pera_mm_file={side: sorted({r['pera_mm_file'] for r in rs}) for side, rs in runs.items()},
        protocol=dict(base, batches=f'{warmup + steps} distinct, shared by all runs'),
        order=order,
        summary=summarise(runs),
        runs=runs,
    )


def trajectory(
    commit: str,
    build: dict,
    steps: int = 3,
    threads: int = 1,
    variants: Sequence[str] = (),
    timeout: Optional[float] = None,
) -> dict:
    """Losses of ``steps`` steps of both trees from the same weights and batches, drop path 0.

    Returns ``commit``, ``reference`` and ``current`` (the worker results: losses
    per step, missing and unexpected keys of the shared initial state dict), and
    one entry per name in ``variants`` (this tree with that variant).
    """
    with tempfile.TemporaryDirectory(prefix='pera-trajectory-') as tmp:
        files = make_inputs(Path(tmp), build, steps, state=True)
        spec = dict(mode='trajectory', build=build, steps=steps, threads=threads, drop_path=0.0)
        spec.update(files)
        with W.CommitCheckout(commit) as co:
            out = dict(commit=co.commit)
            out['reference'] = _run(co.path, spec, commit=co.commit, timeout=timeout)
        out['current'] = _run(C.REPO, spec, timeout=timeout)
        for name in variants:
            out[name] = _run(C.REPO, _variant_spec(spec, name), timeout=timeout)
        return out


def print_summary(payload: dict) -> None:
    s = payload['summary']
    rows = []
    for side in payload['runs']:
        d = s[side]
        rows.append(
            (
                side,
                d['mean_step_s'],
                ' '.join(f'{x:.2f}' for x in d['run_means_s']),
                ' '.join(f'{x:.2f}' for x in d['own_cores']),
                d['peak_rss_mb'],
                d['peak_rss_delta_mb'],
            )
        )
    header = ('side', 'mean step s', 'per run', 'own cores', 'peak RSS MB', 'RSS rise MB')
    print(C.table(rows, header))
    print(
        f'\nratio {payload["commit"][:8]} / current = {s["ratio"]:.3f} '
        f'(rounds: {", ".join(f"{r:.3f}" for r in s["round_ratios"])}); '
        f'peak RSS current / reference = {s["peak_rss_ratio"]:.3f}'
    )
    for key, value in s.items():
        if key.endswith('_over_current'):
            print(f'{key[: -len("_over_current")]} / current = {value:.3f} (mean step times)')
