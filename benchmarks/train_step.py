#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""Training-step benchmark: PerA vs the DINOv2-style baseline, MAE, I-JEPA and LatentMIM.

One *step* is the real training step: ``model.train_step`` (data preprocessor
-> losses -> backward -> grad clip -> AdamW step -> zero_grad, inside the
optimizer wrapper's autocast context) followed, for the self-distillation
methods, by the teacher EMA update (the config's momentum) and the centre update
of every DINO loss. How each method is built: ``benchmarks/_methods.py``; what
is measured and how: ``benchmarks/_measure.py`` and
``benchmarks/train_step_worker.py``.

This script is the orchestrator: every (method, arch, batch, mask ratios) runs in
a fresh worker process, ``--repeats`` times, interleaved (forward order, then
reversed, ...) so slow drifts of a shared machine hit every configuration alike;
it then merges the repeats, forms the ratios PerA / other, checks them against
the ``--target-*`` values, fits the scaling study and prints the tables.

Examples::

    python benchmarks/train_step.py --out work_dirs/bench/train_step.json
    python benchmarks/train_step.py --quick --out /tmp/ts.json
    python benchmarks/train_step.py --archs base --batch 16 --img-size 448 --no-scaling
    python benchmarks/train_step.py --archs small --methods pera mae ijepa latent_mim \\
        --no-scaling --out benchmarks/results/train_step_hosts_cpu.json
    python benchmarks/train_step.py --against-commit 90204a9 --rounds 3 --steps 10 \\
        --threads 2 --out benchmarks/results/train_step_vs_90204a9_cpu.json
    python benchmarks/train_step.py --against-commit 90204a9 --lockstep --steps 20 \\
        --variants switches_off --out /tmp/vs_lockstep.json

``--against-commit COMMIT`` is its own mode (``benchmarks/_against_commit.py``): the
PerA step at the issue-23 shapes (ViT-S, batch 8, 2 x 224 + 8 x 96 px crops, 4096
prototypes) of this tree against the step of COMMIT, each run by its own tree in a
fresh process, interleaved, on distinct batches, the mean step time; ``--variants``
adds runs of this tree that stay out of the ratio (switches off, bf16, compile).
``--lockstep`` keeps every side in a live process and alternates them step by step.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import _common as C

WORKER = Path(__file__).resolve().parent / 'train_step_worker.py'
METHODS = ('pera', 'baseline', 'mae', 'pera_compile', 'ijepa', 'latent_mim')
DEFAULT_METHODS = ('pera', 'baseline', 'mae')
# s, l, t of the PerA config (released-code settings)
DEFAULT_RATIOS = (0.2, 0.2, 0.6)
# the ratio targets hold for these archs (ViT-Ti is too small to be representative)
TARGET_ARCHS = ('small', 'base')


def parse_ratios(text):
    vals = tuple(float(x) for x in text.split(','))
    if len(vals) != 3 or abs(sum(vals) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f'mask ratios must be s,l,t summing to 1: {text!r}')
    return vals


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--archs', nargs='+', default=None, help='tiny small base (default)')
    p.add_argument(
        '--methods',
        nargs='+',
        default=list(DEFAULT_METHODS),
        choices=METHODS,
        help="(pera baseline mae); 'pera_compile' = PerA with torch.compile'd "
        "blocks (compiled during the warm-up steps); 'ijepa' and 'latent_mim' = the "
        'cross-scale hosts from their paper configs (I-JEPA at --img-size with 14 px '
        'patches; LatentMIM at --img-size // 16 cells of 20 px)',
    )
    p.add_argument('--img-size', type=int, default=None, help='global crop side (224)')
    p.add_argument(
        '--local-size',
        type=int,
        default=None,
        help="local crop side (default: the config's global/local ratio 448/96, "
        'rounded to a patch multiple: 48 at 224 px, 96 at 448 px)',
    )
    p.add_argument('--batch', type=int, default=None, help='images per step (8)')
    p.add_argument('--num-local', type=int, default=None, help='local crop pairs (8)')
    p.add_argument('--prototypes', type=int, default=None, help='DINO head K (65536)')
    p.add_argument(
        '--mask-ratios',
        type=parse_ratios,
        default=DEFAULT_RATIOS,
        help='PerA s,l,t for the main table (0.2,0.2,0.6)',
    )
    p.add_argument('--warmup', type=int, default=None, help='warm-up steps (2; last counts FLOPs)')
    p.add_argument('--steps', type=int, default=None, help='timed steps (5)')
    p.add_argument(
        '--repeats',
        type=int,
        default=None,
        help='fresh-process runs per configuration, interleaved; step time = '
        "median of the runs' medians (2; 1 with --quick)",
    )
    p.add_argument('--gemm-size', type=int, default=2048)
    p.add_argument('--gemm-seconds', type=float, default=None, help='GEMM probe length (2)')
    p.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    p.add_argument('--cpu', action='store_true', help='stay on CPU even with a GPU')
    p.add_argument(
        '--no-mem-tracker',
        action='store_true',
        help='skip the extra step that measures the live-tensor peak',
    )
    p.add_argument('--scaling-arch', default=None, help='arch of the scaling study (small)')
    p.add_argument('--scaling-batches', type=int, nargs='+', default=None, help='(4 8 16)')
    p.add_argument(
        '--scaling-ratios',
        type=parse_ratios,
        nargs='+',
        default=None,
        help='(0.1,0.1,0.8 0.2,0.2,0.6 0.3,0.3,0.4)',
    )
    p.add_argument('--no-scaling', action='store_true')
    p.add_argument(
        '--isolation',
        choices=('process', 'group'),
        default='process',
        help="main table: 'process' = a fresh subprocess per configuration "
        "(default); 'group' = one subprocess for all (RSS not isolated)",
    )
    p.add_argument(
        '--scaling-isolation',
        choices=('process', 'group'),
        default=None,
        help='the same for the scaling study (default: process; group with --quick)',
    )
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--wait-load',
        type=float,
        default=0.0,
        help='wait until the 1-min load average is below this before measuring',
    )
    p.add_argument('--wait-deadline', default=None, help="give up waiting at 'HH:MM' UTC")
    p.add_argument(
        '--quick',
        action='store_true',
        help='smoke run: tiny arch, 112 px, batch 4, 4 local 48 px crops, '
        'K=4096, 1+3 steps, grouped scaling with tiny at batches 2 4 8',
    )
    p.add_argument(
        '--target-speedup',
        type=float,
        default=2.0,
        help='goal: PerA throughput / baseline throughput >= this (default 2.0)',
    )
    p.add_argument(
        '--target-memory',
        type=float,
        default=0.25,
        help='goal: PerA peak memory / baseline peak memory <= this (default 0.25)',
    )
    p.add_argument(
        '--target-gemm',
        type=float,
        default=0.5,
        help='goal: PerA achieved FLOP/s / measured GEMM FLOP/s >= this (default 0.5)',
    )
    p.add_argument(
        '--against-commit',
        default=None,
        metavar='COMMIT',
        help='mode: the PerA step of this tree vs that of COMMIT (issue 23 protocol)',
    )
    p.add_argument('--rounds', type=int, default=3, help='--against-commit: interleaved rounds (3)')
    p.add_argument(
        '--lockstep',
        action='store_true',
        help='--against-commit: keep every side in a live process and alternate them '
        'step by step (instead of whole runs in rounds)',
    )
    p.add_argument(
        '--variants',
        nargs='*',
        default=['switches_off'],
        help='--against-commit: extra runs of this tree, out of the ratio: '
        'switches_off, adamw_unfused, rows_advanced, no_prune, aten_linear, '
        'forward_only_linear, aten_heads, conv_embed, sdpa_attention, '
        'clip_outside_step, separate_crops, adamw_foreach, bf16, compile '
        '(default: switches_off)',
    )
    p.add_argument(
        '--ab-variants',
        nargs='*',
        default=[],
        help='--against-commit: after the comparison, each of these variants switched '
        'on and off between steps of one run of this tree (ABBA): what each switch bought',
    )
    p.add_argument(
        '--ab-steps', type=int, default=16, help='--ab-variants: timed steps per variant (16)'
    )
    p.add_argument(
        '--variant-rounds',
        type=int,
        default=None,
        help='--against-commit: run the variants in the first N rounds only (default: all)',
    )
    p.add_argument('--out', default=None, help='JSON output path')
    return p


def resolve_defaults(args):
    quick = dict(
        archs=['tiny'],
        img_size=112,
        local_size=48,
        batch=4,
        num_local=4,
        prototypes=4096,
        warmup=1,
        steps=3,
        gemm_seconds=0.3,
        scaling_arch='tiny',
        scaling_batches=[2, 4, 8],
        scaling_ratios=[(0.1, 0.1, 0.8), (0.2, 0.2, 0.6), (0.3, 0.3, 0.4)],
        scaling_isolation='group',
        repeats=1,
    )
    full = dict(
        archs=['tiny', 'small', 'base'],
        img_size=224,
        local_size=None,
        batch=8,
        num_local=8,
        prototypes=65536,
        warmup=2,
        steps=5,
        gemm_seconds=2.0,
        scaling_arch='small',
        scaling_batches=[4, 8, 16],
        scaling_ratios=[(0.1, 0.1, 0.8), (0.2, 0.2, 0.6), (0.3, 0.3, 0.4)],
        scaling_isolation='process',
        repeats=2,
    )
    base = quick if args.quick else full
    for k, v in base.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.warmup < 1:
        raise SystemExit('--warmup must be >= 1 (the last warm-up step counts FLOPs)')
    return args


def spec_for(args, method, arch, batch, ratios):
    return dict(
        method=method,
        arch=arch,
        img_size=args.img_size,
        local_size=args.local_size,
        batch=batch,
        num_local=args.num_local,
        prototypes=args.prototypes,
        mask_ratios=list(ratios),
        warmup=args.warmup,
        steps=args.steps,
        gemm_size=args.gemm_size,
        gemm_seconds=args.gemm_seconds,
        threads=args.threads,
        cpu=args.cpu,
        seed=args.seed,
        mem_tracker=not args.no_mem_tracker,
    )


def launch(specs, label):
    """Run ``specs`` in one fresh subprocess; returns their results."""
    cmd = [sys.executable, str(WORKER), json.dumps(specs)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(C.REPO))
    res = C.parse_result(proc.stdout)
    if proc.returncode != 0 or res is None:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise RuntimeError(f'benchmark worker failed for {label} (exit {proc.returncode})')
    print(f'  [{label}] done in {time.perf_counter() - t0:.1f}s', flush=True)
    return res


def run_specs(specs, isolation, label, repeats=1):
    """Run every spec ``repeats`` times, interleaved (forward, then reversed order,
    ...), so slow drifts of the machine hit every configuration alike; returns one
    merged result per spec, in order."""
    if not specs:
        return []
    runs = [[] for _ in specs]
    for rep in range(repeats):
        order = list(range(len(specs)))
        if rep % 2:
            order.reverse()
        batch = [dict(specs[i], extras=rep == 0, repeat=rep) for i in order]
        if isolation == 'group':
            got = launch(
                batch, f'{label}: {len(batch)} configs in one process, repeat {rep + 1}/{repeats}'
            )
        else:
            got = []
            for s in batch:
                got.extend(
                    launch(
                        [s],
                        f'{label}: {s["method"]} {s["arch"]} b{s["batch"]} '
                        f'r{tuple(s["mask_ratios"])} '
                        f'(repeat {rep + 1}/{repeats})',
                    )
                )
        for i, r in zip(order, got):
            runs[i].append(r)
    return [merge_runs(rs) for rs in runs]


def merge_runs(runs):
    """One result from repeated runs of a spec: medians over the runs' median step
    times and GEMM probes; FLOPs, tokens and tensor peaks come from the first run."""
    first = runs[0]
    out = dict(first)
    out['spec'] = {k: v for k, v in first['spec'].items() if k not in ('extras', 'repeat')}
    if len(runs) == 1:
        out['repeats'] = 1
        return out
    med = C.median([r['step_time_s'] for r in runs])
    b = first['spec']['batch']
    out.update(
        step_time_s=med,
        img_per_s=b / med,
        repeats=len(runs),
        step_times_s=[t for r in runs for t in r['step_times_s']],
        peak_rss_delta_mb=C.median([r['peak_rss_delta_mb'] for r in runs]),
        runs=[
            dict(
                step_time_s=r['step_time_s'],
                step_times_s=r['step_times_s'],
                gemm_gflops=r.get('gemm', {}).get('gflops'),
                peak_rss_delta_mb=r['peak_rss_delta_mb'],
                contention=r['contention'],
            )
            for r in runs
        ],
        losses_finite=all(r['losses_finite'] for r in runs),
    )
    if first.get('flops_per_step'):
        out['achieved_gflops'] = first['flops_per_step'] / med / 1e9
    if all('gemm' in r for r in runs):
        g = C.median([r['gemm']['gflops'] for r in runs])
        out['gemm'] = dict(first['gemm'], gflops=g, gflops_runs=[r['gemm']['gflops'] for r in runs])
        out['gemm_fraction'] = out['achieved_gflops'] / g if out.get('achieved_gflops') else None
    out['contention'] = dict(
        first['contention'],
        foreign_cores=max(r['contention'].get('foreign_cores') or 0 for r in runs),
    )
    return out


def _ratio(a, b):
    return a / b if (a is not None and b not in (None, 0)) else None


def goal(value, op, target):
    """One target check: ``value op target`` (a missing value is not met)."""
    met = value is not None and (value >= target if op == '>=' else value <= target)
    return dict(value=value, op=op, target=target, met=bool(met))


def summarise(results, args):
    by = {(r['spec']['method'], r['spec']['arch']): r for r in results}
    ratios, targets = {}, {}
    mem_key = (
        'cuda_max_allocated_mb'
        if any('cuda_max_allocated_mb' in r for r in results)
        else 'peak_rss_delta_mb'
    )
    for arch in args.archs:
        p = by.get(('pera', arch))
        if p is None:
            continue
        entry = {}
        for other in METHODS[1:]:
            o = by.get((other, arch))
            if o is None:
                continue
            entry[f'pera_vs_{other}'] = dict(
                throughput=_ratio(p['img_per_s'], o['img_per_s']),
                step_time=_ratio(p['step_time_s'], o['step_time_s']),
                gflops_per_img=_ratio(p['gflops_per_img'], o['gflops_per_img']),
                peak_mem=_ratio(p.get(mem_key), o.get(mem_key)),
                peak_mem_source=mem_key,
                tensor_peak=_ratio(p.get('tensor_peak_mb'), o.get('tensor_peak_mb')),
                tensor_dynamic_peak=_ratio(
                    p.get('tensor_dynamic_peak_mb'), o.get('tensor_dynamic_peak_mb')
                ),
            )
        entry['pera_gemm_fraction'] = p.get('gemm_fraction')
        ratios[arch] = entry
        if arch in TARGET_ARCHS and 'pera_vs_baseline' in entry:
            pb = entry['pera_vs_baseline']
            targets[arch] = dict(
                throughput=goal(pb['throughput'], '>=', args.target_speedup),
                peak_mem=goal(pb['peak_mem'], '<=', args.target_memory),
                tensor_peak=goal(pb['tensor_peak'], '<=', args.target_memory),
                gemm_fraction=goal(entry['pera_gemm_fraction'], '>=', args.target_gemm),
            )
    return ratios, targets


def scaling_summary(results, args):
    base_r = list(DEFAULT_RATIOS)
    mid_batch = sorted(args.scaling_batches)[len(args.scaling_batches) // 2]
    by_batch = sorted(
        (r for r in results if r['spec']['mask_ratios'] == base_r), key=lambda r: r['spec']['batch']
    )
    by_batch = [r for r in by_batch if r['spec']['batch'] in args.scaling_batches]
    by_ratio = [
        r
        for r in results
        if r['spec']['batch'] == mid_batch
        and tuple(r['spec']['mask_ratios']) in {tuple(x) for x in args.scaling_ratios}
    ]
    by_ratio.sort(key=lambda r: r['tokens']['weighted_token_blocks_per_img'])

    def row(r):
        tk = r['tokens']
        return dict(
            batch=r['spec']['batch'],
            mask_ratios=r['spec']['mask_ratios'],
            step_time_s=r['step_time_s'],
            img_per_s=r['img_per_s'],
            gflops_per_step=r['flops_per_step'] / 1e9,
            student_tokens_per_img=tk['student_token_blocks_per_img']
            / max(tk['student_blocks'], 1),
            teacher_tokens_per_img=tk['teacher_token_blocks_per_img']
            / max(tk['teacher_blocks'], 1),
            weighted_token_blocks_per_img=tk['weighted_token_blocks_per_img'],
            tensor_peak_mb=r.get('tensor_peak_mb'),
            tensor_dynamic_peak_mb=r.get('tensor_dynamic_peak_mb'),
            foreign_cores=r['contention'].get('foreign_cores'),
        )

    batch_rows = [row(r) for r in by_batch]
    ratio_rows = [row(r) for r in by_ratio]
    fits = dict(
        time_vs_batch=C.linear_fit(
            [x['batch'] for x in batch_rows], [x['step_time_s'] for x in batch_rows]
        ),
        flops_vs_batch=C.linear_fit(
            [x['batch'] for x in batch_rows], [x['gflops_per_step'] for x in batch_rows]
        ),
        time_vs_weighted_tokens=C.linear_fit(
            [x['weighted_token_blocks_per_img'] for x in ratio_rows],
            [x['step_time_s'] for x in ratio_rows],
        ),
        time_vs_gflops=C.linear_fit(
            [x['gflops_per_step'] for x in batch_rows + ratio_rows],
            [x['step_time_s'] for x in batch_rows + ratio_rows],
        ),
    )
    if all(x['tensor_dynamic_peak_mb'] is not None for x in batch_rows):
        fits['dynamic_mem_vs_batch'] = C.linear_fit(
            [x['batch'] for x in batch_rows], [x['tensor_dynamic_peak_mb'] for x in batch_rows]
        )
    return dict(
        arch=args.scaling_arch,
        img_size=args.img_size,
        batch_rows=batch_rows,
        ratio_batch=mid_batch,
        ratio_rows=ratio_rows,
        fits=fits,
    )


def print_report(results, ratios, targets, scaling):
    rows = []
    for r in results:
        s = r['spec']
        mem = r.get('cuda_max_allocated_mb', r['peak_rss_delta_mb'])
        spread = None
        if r.get('runs'):
            ms = [x['step_time_s'] for x in r['runs']]
            spread = f'{100 * (max(ms) - min(ms)) / r["step_time_s"]:.0f}%'
        rows.append(
            [
                s['method'],
                s['arch'],
                s['batch'],
                r['step_time_s'],
                spread,
                r['img_per_s'],
                r['gflops_per_img'],
                r['achieved_gflops'],
                r.get('gemm_fraction'),
                mem,
                r.get('tensor_peak_mb'),
                r.get('tensor_dynamic_peak_mb'),
                r['contention'].get('foreign_cores'),
            ]
        )
    print('\nTraining step (median of timed steps; GFLOPs = fwd+bwd per image)')
    print(
        C.table(
            rows,
            [
                'method',
                'arch',
                'batch',
                'step s',
                'spread',
                'img/s',
                'GFLOP/img',
                'GFLOP/s',
                'of GEMM',
                'peak MB',
                'tensor MB',
                'dyn MB',
                'other cpu',
            ],
        )
    )
    print(
        "step s: median over repeats of each fresh process's median step; spread: range of "
        'the per-process medians / median;\n'
        'peak MB: CUDA max allocated on GPU, else RSS high-water mark minus RSS before '
        'step 1;\ntensor MB: live-tensor peak (dispatch tracker); dyn MB: tensor peak minus '
        'params/buffers/optimizer state; other cpu: cores used by other processes'
    )
    rows = []
    for arch, e in ratios.items():
        for k, v in e.items():
            if isinstance(v, dict):
                rows.append(
                    [
                        arch,
                        k.replace('pera_vs_', 'PerA / '),
                        v['throughput'],
                        v['gflops_per_img'],
                        v['peak_mem'],
                        v['tensor_peak'],
                        v['tensor_dynamic_peak'],
                    ]
                )
    if rows:
        print('\nRatios (PerA / other)')
        print(
            C.table(
                rows,
                ['arch', 'pair', 'throughput', 'GFLOP/img', 'peak mem', 'tensor peak', 'dyn peak'],
            )
        )
    if targets:
        print('\nTargets')
        rows = []
        for arch, t in targets.items():
            for name, v in t.items():
                rows.append(
                    [
                        arch,
                        name,
                        v['value'],
                        f'{v["op"]} {v["target"]:g}',
                        'met' if v['met'] else 'MISSED',
                    ]
                )
        print(C.table(rows, ['arch', 'target', 'value', 'goal', 'status']))
    if scaling:
        print(f'\nScaling, PerA {scaling["arch"]} at {scaling["img_size"]} px')
        hdr = [
            'batch',
            'ratios s,l,t',
            'step s',
            'GFLOP/step',
            'student tok',
            'teacher tok',
            'w.tok-blocks/img',
            'dyn MB',
        ]
        rows = [
            [
                x['batch'],
                ','.join(f'{v:g}' for v in x['mask_ratios']),
                x['step_time_s'],
                x['gflops_per_step'],
                x['student_tokens_per_img'],
                x['teacher_tokens_per_img'],
                x['weighted_token_blocks_per_img'],
                x['tensor_dynamic_peak_mb'],
            ]
            for x in scaling['batch_rows'] + scaling['ratio_rows']
        ]
        print(C.table(rows, hdr))
        for name, f in scaling['fits'].items():
            print(
                f'  fit {name}: slope {f["slope"]:.4g}, intercept {f["intercept"]:.4g} '
                f'({100 * f.get("intercept_share", float("nan")):.1f}% of max), '
                f'R^2 {f["r2"]:.4f}'
            )
        print(
            '  w.tok-blocks/img = 3 x student + 1 x teacher token-blocks per image '
            '(fwd+bwd vs fwd only)'
        )


def against_commit(args):
    """The ``--against-commit`` mode: interleaved runs, the ratio, the JSON."""
    import _against_commit as A

    if args.rounds < 1 or (args.steps is not None and args.steps < 1):
        raise SystemExit('--rounds and --steps must be >= 1')
    gate = C.wait_for_quiet(args.wait_load, args.wait_deadline)
    if args.lockstep:
        payload = A.lockstep_compare(
            args.against_commit,
            warmup=2 if args.warmup is None else args.warmup,
            steps=10 if args.steps is None else args.steps,
            threads=args.threads or 2,
            variants=args.variants,
        )
        payload['meta']['load_gate'] = gate
        A.print_lockstep_summary(payload)
        return _write(args, _with_switch_ab(args, payload))
    payload = A.compare(
        args.against_commit,
        rounds=args.rounds,
        warmup=2 if args.warmup is None else args.warmup,
        steps=10 if args.steps is None else args.steps,
        threads=args.threads or 2,
        variants=args.variants,
        variant_rounds=args.variant_rounds,
    )
    payload['meta']['load_gate'] = gate
    A.print_summary(payload)
    return _write(args, _with_switch_ab(args, payload))


def _with_switch_ab(args, payload):
    import _against_commit as A

    if args.ab_variants:
        payload['switch_ab'] = A.switch_ab(
            args.ab_variants,
            warmup=2 if args.warmup is None else args.warmup,
            steps=args.ab_steps,
            threads=args.threads or 2,
        )
        print()
        A.print_switch_ab(payload['switch_ab'])
    return payload


def _write(args, payload) -> int:
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    return 0


def main(argv=None):
    parsed = make_parser().parse_args(argv)
    if parsed.against_commit:
        try:
            return against_commit(parsed)
        except RuntimeError as err:  # CommitCheckoutError: one line, no traceback
            raise SystemExit(f'train_step.py: {str(err).splitlines()[0]}') from None
    args = resolve_defaults(parsed)
    gate = C.wait_for_quiet(args.wait_load, args.wait_deadline)
    meta = C.machine_info()
    meta['load_gate'] = gate
    print(
        f'{meta["cpu_model"]} | torch {meta.get("torch")} | threads '
        f'{meta.get("torch_threads")} | load {meta["loadavg_start"]}',
        flush=True,
    )
    t0 = time.perf_counter()
    main_specs = [
        spec_for(args, m, a, args.batch, args.mask_ratios) for a in args.archs for m in args.methods
    ]
    scaling_specs = []
    if not args.no_scaling and 'pera' in args.methods:
        mid = sorted(args.scaling_batches)[len(args.scaling_batches) // 2]
        keys = [(b, tuple(DEFAULT_RATIOS)) for b in args.scaling_batches]
        keys += [(mid, tuple(r)) for r in args.scaling_ratios]
        keys = list(dict.fromkeys(keys))
        scaling_specs = [spec_for(args, 'pera', args.scaling_arch, b, r) for b, r in keys]
    # a scaling point identical to a main-table configuration is measured once
    key = json.dumps
    extra = [
        s
        for s in scaling_specs
        if key(s, sort_keys=True) not in {key(m, sort_keys=True) for m in main_specs}
    ]
    if args.isolation == 'group' and args.scaling_isolation == 'group':
        both = run_specs(main_specs + extra, 'group', 'main + scaling', args.repeats)
        results, extra_results = both[: len(main_specs)], both[len(main_specs) :]
    else:
        results = run_specs(main_specs, args.isolation, 'main', args.repeats)
        extra_results = run_specs(extra, args.scaling_isolation, 'scaling', args.repeats)
    by_spec = {key(r['spec'], sort_keys=True): r for r in results + extra_results}
    scaling_results = [by_spec[key(s, sort_keys=True)] for s in scaling_specs]
    ratios, targets = summarise(results, args)
    scaling = scaling_summary(scaling_results, args) if scaling_specs else None
    meta['loadavg_end'] = C.loadavg()
    meta['total_s'] = round(time.perf_counter() - t0, 1)
    meta['args'] = vars(args)
    print_report(results, ratios, targets, scaling)
    payload = dict(
        meta=meta,
        results=results,
        ratios=ratios,
        targets=targets,
        scaling=scaling,
        scaling_results=scaling_results,
    )
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    print(f'total {meta["total_s"]}s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
