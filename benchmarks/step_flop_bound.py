#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""How fast the PerA step could be in fp32 on this machine: its FLOPs at the GEMM rate.

At the issue-23 shapes (ViT-S, batch 8, 2 x 224 + 8 x 96 px crops, 4096
prototypes) the step's FLOPs are counted with ``FlopCounterMode`` (GEMMs and CPU
SDPA; the block linears on the aten kernel, which the counter knows), once with
the pruned last block (this tree) and once without (the FLOPs of the reference
commit, whose model is otherwise the same). The sustained ``torch.mm`` rate on
square matrices (``_measure.gemm_probe``, same threads) then gives the time the
step's FLOPs alone take: the lower bound of any fp32 step built from these
GEMMs. Mean step times of this tree (the defaults) are measured in the same run,
interleaved with the probe.

Example::

    python benchmarks/step_flop_bound.py --threads 2 --steps 6 \\
        --out benchmarks/results/step_flop_bound_cpu.json
"""

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import _against_commit as A
import _common as C
import _measure as M
import torch

HERE = Path(__file__).resolve().parent


def _stepper(build):
    spec = importlib.util.spec_from_file_location('spw', HERE / 'step_protocol_worker.py')
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    return worker, worker.Stepper(dict(build=build))


def count_step_flops(worker, stepper, batch, prune: bool):
    """FLOPs of one step (aten linears so that the counter sees them), pruned or not."""
    variant = {
        'model_attrs': {
            **A._ATEN_LINEAR,
            **A._ATEN_HEADS,
            **A._ATEN_EMBED,
            **{k: prune for k in A._NO_PRUNE},
        },
    }
    undo = worker.apply_overrides(stepper, variant)
    total, by_op = M.count_flops(lambda: stepper.step(batch))
    worker.apply_overrides(stepper, undo)
    return total, by_op


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--steps', type=int, default=6, help='timed steps of this tree (6)')
    p.add_argument('--gemm-n', type=int, default=1536, help='side of the probe matrices')
    p.add_argument('--gemm-seconds', type=float, default=3.0)
    p.add_argument('--out', default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    build = dict(A.ISSUE_SHAPES)
    worker, stepper = _stepper(build)
    with tempfile.TemporaryDirectory() as tmp:
        files = A.make_inputs(Path(tmp), build, args.steps + 4)
        batches = torch.load(files['batches'], weights_only=False)
    for batch in batches[:2]:
        stepper.step(batch)
    flops = {}
    for prune in (True, False):
        total, by_op = count_step_flops(worker, stepper, batches[2], prune)
        flops['pruned' if prune else 'unpruned'] = dict(total=total, by_op=by_op)
    probes, times = [], []
    for i, batch in enumerate(batches[4 : 4 + args.steps]):
        if i % 3 == 0:
            probes.append(M.gemm_probe(torch.device('cpu'), torch.float32, args.gemm_n, 1.0))
        t0 = time.perf_counter()
        stepper.step(batch)
        times.append(time.perf_counter() - t0)
    probes.append(M.gemm_probe(torch.device('cpu'), torch.float32, args.gemm_n, args.gemm_seconds))
    gflops = sum(pr['gflops'] for pr in probes) / len(probes)
    mean_step = sum(times) / len(times)
    out = dict(
        meta=C.machine_info(),
        shapes=build,
        threads=args.threads,
        flops=flops,
        gemm_probes=probes,
        gemm_gflops=gflops,
        step_times_s=times,
        mean_step_s=mean_step,
    )
    for name, f in flops.items():
        out[f'{name}_flop_time_s'] = f['total'] / (gflops * 1e9)
    out['achieved_over_probe'] = flops['pruned']['total'] / mean_step / (gflops * 1e9)
    rows = [(name, f['total'] / 1e9, out[f'{name}_flop_time_s']) for name, f in flops.items()]
    print(C.table(rows, ('step', 'GFLOP', f's at {gflops:.0f} GFLOP/s')))
    print(
        f'\nthis tree: mean step {mean_step:.3f} s '
        f'({out["achieved_over_probe"]:.2f} of the probe rate)'
    )
    if args.out:
        C.write_json(args.out, out)
        print(f'JSON written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
