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
  ``adamw_unfused`` / ``rows_advanced`` / ``no_prune`` / ``aten_linear`` /
  ``forward_only_linear`` (block input gradients on aten) / ``aten_heads`` /
  ``conv_embed`` (the whole-grid patch convolution) / ``sdpa_attention`` (SDPA
  for every sequence length) (one switch each at its earlier form),
  ``adamw_foreach`` (AdamW's multi-tensor path instead of the fused kernel),
  ``bf16`` (CPU bf16 autocast) and ``compile`` (``torch.compile``; the first
  step, which compiles, is reported apart and not in the mean). Variants run in
  the first ``variant_rounds`` rounds and are compared with the current tree's
  runs of those rounds.

:func:`lockstep_compare` (``--lockstep``) keeps every side in a live worker and
runs step ``i`` on each in turn: on a machine whose speed drifts by tens of per
cent within minutes, whole runs in rounds meet different machines.
:func:`switch_ab` (``--ab-variants``) switches one variant on and off between
the steps of one run of this tree: what that switch bought.

:func:`trajectory` runs both trees for a few steps from the same weights and
batches (drop path 0) and returns their losses, for the equivalence test.
"""

import contextlib
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
#: the student and teacher ViTs, whose switches are set alike
_BACKBONES = ('backbone', 'teacher.backbone')
#: the switches at their earlier forms, one by one (``model_attrs`` / ``optim_wrapper``)
_ROWS_ADVANCED = {f'{net}.blocks.*.subset_rows': 'advanced' for net in _BACKBONES}
_NO_PRUNE = {f'{net}.prune_last_block': False for net in _BACKBONES}
_ATEN_LINEAR = {
    f'{net}.blocks.*.{part}.linear_kernel': 'aten' for net in _BACKBONES for part in ('attn', 'mlp')
}
_BLOCKS_FORWARD_ONLY = {k: 'auto_forward' for k in _ATEN_LINEAR}
_CONV_EMBED = {f'{net}.sparse_embed': False for net in _BACKBONES}
#: the embedding GEMM of the sparse paths on aten (for the FLOP counter)
_ATEN_EMBED = {f'{net}.linear_kernel': 'aten' for net in _BACKBONES}
_SDPA_ATTENTION = {f'{net}.blocks.*.attn.attention_kernel': 'sdpa' for net in _BACKBONES}
_ATEN_HEADS = {
    f'{head}.linear_kernel': 'aten' for head in ('projector', 'teacher.projector', 'predictor')
}
#: the student's global and local crops through the blocks one after the other
_SEPARATE_CROPS = {'backbone.pack_crops': False}
_SWITCHES_OFF = dict(
    optim_wrapper=dict(nonfinite_check='per_grad', clip_in_step=False, optimizer=dict(fused=False)),
    model_attrs={
        'ema_update': 'mul_add',
        'backbone.mask_token_insert': 'gather',
        **_ROWS_ADVANCED,
        **_NO_PRUNE,
        **_ATEN_LINEAR,
        **_ATEN_HEADS,
        **_CONV_EMBED,
        **_SDPA_ATTENTION,
        **_SEPARATE_CROPS,
    },
)
#: variants of this tree: (worker spec overrides, build overrides)
VARIANTS = {
    'switches_off': _SWITCHES_OFF,
    'adamw_unfused': dict(optim_wrapper=dict(optimizer=dict(fused=False))),
    'rows_advanced': dict(model_attrs=_ROWS_ADVANCED),
    'no_prune': dict(model_attrs=_NO_PRUNE),
    'aten_linear': dict(model_attrs=_ATEN_LINEAR),
    'forward_only_linear': dict(model_attrs=_BLOCKS_FORWARD_ONLY),
    'aten_heads': dict(model_attrs=_ATEN_HEADS),
    'conv_embed': dict(model_attrs=_CONV_EMBED),
    'sdpa_attention': dict(model_attrs=_SDPA_ATTENTION),
    'clip_outside_step': dict(optim_wrapper=dict(clip_in_step=False)),
    'separate_crops': dict(model_attrs=_SEPARATE_CROPS),
    'bf16': dict(optim_wrapper=dict(cpu_bf16=True)),
    'adamw_foreach': dict(optim_wrapper=dict(optimizer=dict(fused=False, foreach=True))),
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


def _side_ratios(ref: dict, cur: dict) -> dict:
    """The step-time ratio (reference / current) and the RSS ratios (current / reference)."""
    return dict(
        ratio=ref['mean_step_s'] / cur['mean_step_s'],
        peak_rss_ratio=cur['peak_rss_mb'] / ref['peak_rss_mb'],
        peak_rss_delta_ratio=cur['peak_rss_delta_mb'] / ref['peak_rss_delta_mb'],
    )


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
    out.update(_side_ratios(ref, cur))
    out['round_ratios'] = [
        a['result']['mean_step_s'] / b['result']['mean_step_s']
        for a, b in zip(runs['reference'], runs['current'])
    ]
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


def lockstep_order(step: int, sides: Sequence[str]) -> List[str]:
    """The sides in the order they run step ``step``: as given, reversed every other step."""
    return list(sides) if step % 2 == 0 else list(sides)[::-1]


def summarise_lockstep(times: Dict[str, List[float]], cpu, finish, warmup: int) -> dict:
    """Mean timed step per side, the ratio, per-step ratios and the RSS ratios."""
    out = {}
    for side, ts in times.items():
        timed, timed_cpu = ts[warmup:], cpu[side][warmup:]
        out[side] = dict(
            mean_step_s=_mean(timed),
            step_times_s=timed,
            warmup_times_s=ts[:warmup],
            own_cores=sum(timed_cpu) / sum(timed),
            **{k: finish[side][k] for k in ('peak_rss_mb', 'peak_rss_delta_mb', 'losses_finite')},
        )
    ref, cur = out['reference'], out['current']
    out.update(_side_ratios(ref, cur))
    step_ratios = sorted(a / b for a, b in zip(ref['step_times_s'], cur['step_times_s']))
    out['step_ratios'] = dict(
        min=step_ratios[0], median=step_ratios[len(step_ratios) // 2], max=step_ratios[-1]
    )
    for side in times:  # > 1: the variant is slower than the current default
        if side not in ('reference', 'current'):
            out[f'{side}_over_current'] = out[side]['mean_step_s'] / cur['mean_step_s']
    return out


def lockstep_compare(
    commit: str,
    warmup: int = 2,
    steps: int = 10,
    threads: int = 2,
    variants: Sequence[str] = (),
    build: Optional[dict] = None,
    momentum: float = 0.999,
) -> dict:
    """Both trees (and the variants) in live worker processes, alternated step by step.

    Every side builds its model and loads the batches first; then step ``i`` runs
    on every side in turn (order reversed every other step) while the others wait,
    so all sides meet the same machine within seconds of each other. The mean over
    the ``steps`` timed steps is compared, as in :func:`compare`.
    """
    build = dict(ISSUE_SHAPES if build is None else build)
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(
            f'--variants: unknown {sorted(unknown)}; expected some of {list(VARIANTS)}'
        )
    meta = C.machine_info()
    base = dict(mode='lockstep', build=build, threads=threads, momentum=momentum)
    with W.CommitCheckout(commit) as co, tempfile.TemporaryDirectory(prefix='pera-ls-') as tmp:
        base.update(make_inputs(Path(tmp), build, warmup + steps))
        specs = {'reference': base, 'current': base}
        specs.update({v: _variant_spec(base, v) for v in variants})
        sides = list(specs)
        with contextlib.ExitStack() as stack:
            workers, ready = {}, {}
            for side in tqdm(sides, desc='building', unit='side'):
                tree = co.path if side == 'reference' else C.REPO
                workers[side] = stack.enter_context(
                    W.WorkerProcess(tree, str(PROTOCOL_WORKER), [json.dumps(specs[side])])
                )
                ready[side] = workers[side].read_result()
            times = {side: [] for side in sides}
            cpu = {side: [] for side in sides}
            for i in tqdm(range(warmup + steps), desc=f'{co.commit[:8]} lockstep', unit='step'):
                for side in lockstep_order(i, sides):
                    answer = workers[side].request(f'step {i}')
                    times[side].append(answer['time_s'])
                    cpu[side].append(answer['cpu_s'])
            finish = {side: workers[side].request('finish') for side in sides}
            pera_files = {side: workers[side].pera_mm_file for side in sides}
    meta['loadavg_end'] = C.loadavg()
    return dict(
        meta=meta,
        commit=co.commit,
        pera_mm_file=pera_files,
        protocol=dict(
            base,
            batches=f'{warmup + steps} distinct, shared by all sides',
            order='lockstep: step i on every side in turn, reversed every other step',
            warmup=warmup,
            steps=steps,
        ),
        ready={side: {k: v for k, v in r.items() if k != 'spec'} for side, r in ready.items()},
        summary=summarise_lockstep(times, cpu, finish, warmup),
    )


def print_lockstep_summary(payload: dict) -> None:
    s = payload['summary']
    rows = [
        (
            side,
            s[side]['mean_step_s'],
            f'{min(s[side]["step_times_s"]):.2f}-{max(s[side]["step_times_s"]):.2f}',
            s[side]['own_cores'],
            s[side]['peak_rss_mb'],
            s[side]['peak_rss_delta_mb'],
        )
        for side in payload['pera_mm_file']
    ]
    header = ('side', 'mean step s', 'range s', 'own cores', 'peak RSS MB', 'RSS rise MB')
    print(C.table(rows, header))
    r = s['step_ratios']
    print(
        f'\nratio {payload["commit"][:8]} / current = {s["ratio"]:.3f} (per step: median '
        f'{r["median"]:.3f}, {r["min"]:.3f}-{r["max"]:.3f}); '
        f'peak RSS current / reference = {s["peak_rss_ratio"]:.3f}'
    )
    for key, value in s.items():
        if key.endswith('_over_current'):
            print(f'{key[: -len("_over_current")]} / current = {value:.3f} (mean step times)')


def switch_ab(
    variants: Sequence[str],
    warmup: int = 2,
    steps: int = 16,
    threads: int = 2,
    build: Optional[dict] = None,
    momentum: float = 0.999,
) -> dict:
    """What each variant costs against this tree's defaults, measured inside one run.

    Per variant, one fresh worker of this tree switches the variant on and off
    between steps (ABBA) on one model; ``variant_over_default`` > 1 means the
    earlier form is slower, i.e. the switch bought that much.
    """
    build = dict(ISSUE_SHAPES if build is None else build)
    bad = [v for v in variants if v not in VARIANTS or 'build' in VARIANTS[v]]
    if bad:
        raise SystemExit(
            f'--ab-variants: {bad} cannot be switched at run time; expected some of '
            f'{[v for v in VARIANTS if "build" not in VARIANTS[v]]}'
        )
    out = {}
    with tempfile.TemporaryDirectory(prefix='pera-ab-') as tmp:
        files = make_inputs(Path(tmp), build, warmup + steps)
        for name in tqdm(variants, desc='switch A/B', unit='variant'):
            variant = {k: v for k, v in VARIANTS[name].items() if k != 'build'}
            spec = dict(mode='ab', build=build, threads=threads, momentum=momentum)
            spec.update(files, warmup=warmup, steps=steps, variant=variant)
            out[name] = _run(C.REPO, spec)['result']
            out[name].pop('spec', None)
            tqdm.write(f'  {name} / default = {out[name]["variant_over_default"]:.3f}')
    return out


def print_switch_ab(results: dict) -> None:
    rows = [
        (
            name,
            r['mean_step_s']['default'],
            r['mean_step_s']['variant'],
            r['variant_over_default'],
        )
        for name, r in results.items()
    ]
    print(C.table(rows, ('variant', 'default s', 'variant s', 'variant / default')))


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
