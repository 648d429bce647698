#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""fp32 GEMM rates of aten (MKL) and oneDNN at the linears' shapes of the PerA step.

Which kernel ``linear_kernel='auto'`` should use for each GEMM of a linear, measured
rather than assumed. For every (rows, in, out) of the issue-23 step (ViT-S blocks
and the heads, rows as the step has them) three GEMMs are timed:

- forward ``x W^T + b``: ``F.linear`` (aten ``addmm``) and oneDNN's
  ``_linear_pointwise`` (bias in the epilogue);
- input gradient ``g W``: aten ``mm`` and oneDNN on a transposed view of ``W``;
- weight gradient ``g^T x``: aten ``mm`` and oneDNN on transposed views of both.

Forms alternate within every round (order reversed every other round), so a
drift of the machine hits both. Printed: GFLOP/s per shape and form, and the
summed time of each GEMM kind per kernel with the ratio aten / oneDNN.

Example::

    python benchmarks/gemm_kernels.py --threads 2 --rounds 4 \\
        --out benchmarks/results/gemm_kernels_cpu.json
"""

import argparse
import sys

import _common as C

#: (name, rows, in, out): rows per call at the issue's shapes (batch 8; mask
#: ratios s 0.2 / l 0.2 / t 0.6 of 196 global and 36 local patches, + cls)
BLOCK_ROWS = (
    ('teacher global', 16 * 119),
    ('teacher local', 64 * 23),
    ('student global, mask tokens in', 16 * 79),
    ('student global', 16 * 40),
    ('student local', 64 * 8),
)
BLOCK_LINEARS = (('qkv', 384, 1152), ('proj', 384, 384), ('fc1', 384, 1536), ('fc2', 1536, 384))
HEAD_SHAPES = (
    ('pixel head fc1', 624, 384, 2048),
    ('pixel head fc2', 624, 2048, 2048),
    ('pixel head fc3', 624, 2048, 384),
    ('pixel head prototypes', 624, 384, 768),
    ('DINO head fc1', 80, 384, 2048),
    ('DINO head fc2', 80, 2048, 2048),
    ('DINO head fc3', 80, 2048, 384),
    ('DINO head prototypes', 80, 384, 4096),
)
KINDS = ('forward', 'grad_input', 'grad_weight')


def step_shapes():
    """(name, rows, in, out) of every linear shape of the step."""
    blocks = [
        (f'{where} {lin}', rows, k, n) for where, rows in BLOCK_ROWS for lin, k, n in BLOCK_LINEARS
    ]
    return blocks + list(HEAD_SHAPES)


def gemm_forms(rows, k, n):
    """``{kind: {'aten': fn, 'onednn': fn}}`` on random operands of this shape."""
    import torch
    import torch.nn.functional as F

    dnn = torch.ops.mkldnn._linear_pointwise
    g = torch.Generator().manual_seed(rows * 7 + k + n)
    x, w = torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g)
    b, dy = torch.randn(n, generator=g), torch.randn(rows, n, generator=g)
    return {
        'forward': dict(
            aten=lambda: F.linear(x, w, b), onednn=lambda: dnn(x, w, b, 'none', [], '')
        ),
        'grad_input': dict(
            aten=lambda: dy.mm(w), onednn=lambda: dnn(dy, w.t(), None, 'none', [], '')
        ),
        'grad_weight': dict(
            aten=lambda: dy.t().mm(x), onednn=lambda: dnn(dy.t(), x.t(), None, 'none', [], '')
        ),
    }


def measure(shapes, rounds, repeats):
    """Mean seconds per call, ``{(name, kind, kernel): s}``, forms interleaved per round."""
    seconds = {}
    for r in range(rounds):
        for name, rows, k, n in shapes:
            for kind, fns in gemm_forms(rows, k, n).items():
                order = ('aten', 'onednn') if r % 2 == 0 else ('onednn', 'aten')
                for kernel in order:
                    t = C.timed(fns[kernel], repeats) / rounds
                    seconds[name, kind, kernel] = seconds.get((name, kind, kernel), 0.0) + t
    return seconds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--threads', type=int, default=2, help='torch threads (2)')
    p.add_argument('--rounds', type=int, default=4, help='interleaved rounds (4)')
    p.add_argument('--repeats', type=int, default=10, help='timed calls per form and round (10)')
    p.add_argument('--out', default=None, help='JSON output path')
    args = p.parse_args(argv)
    if min(args.threads, args.rounds, args.repeats) < 1:
        raise SystemExit('gemm_kernels.py: --threads, --rounds and --repeats must be >= 1')
    import torch

    if not torch.backends.mkldnn.is_available():
        raise SystemExit('gemm_kernels.py: this PyTorch has no oneDNN (torch.backends.mkldnn)')
    torch.set_num_threads(args.threads)
    shapes = step_shapes()
    seconds = measure(shapes, args.rounds, args.repeats)
    rows, per_shape = [], []
    for name, m, k, n in shapes:
        flop = 2 * m * k * n
        rates = {
            kind: {kr: flop / seconds[name, kind, kr] / 1e9 for kr in ('aten', 'onednn')}
            for kind in KINDS
        }
        per_shape.append(dict(name=name, rows=m, in_features=k, out_features=n, gflops=rates))
        rows.append(
            (
                name,
                m,
                k,
                n,
                *(f'{rates[kd]["aten"]:.0f} / {rates[kd]["onednn"]:.0f}' for kd in KINDS),
            )
        )
    header = ('linear', 'rows', 'in', 'out', 'forward aten / oneDNN', 'grad_input', 'grad_weight')
    print(C.table(rows, header) + '\n(GFLOP/s)\n')
    totals = []
    for group, names in (
        ('blocks', [s[0] for s in shapes[: -len(HEAD_SHAPES)]]),
        ('heads', [s[0] for s in HEAD_SHAPES]),
    ):
        for kind in KINDS:
            aten = sum(seconds[nm, kind, 'aten'] for nm in names)
            dnn = sum(seconds[nm, kind, 'onednn'] for nm in names)
            totals.append(dict(group=group, kind=kind, aten_s=aten, onednn_s=dnn, ratio=aten / dnn))
    summary = [
        (t['group'], t['kind'], t['aten_s'] * 1e3, t['onednn_s'] * 1e3, t['ratio']) for t in totals
    ]
    print(C.table(summary, ('group', 'GEMM', 'aten ms', 'oneDNN ms', 'aten / oneDNN')))
    if args.out:
        payload = dict(
            meta=C.machine_info(), threads=args.threads, rounds=args.rounds, repeats=args.repeats
        )
        C.write_json(args.out, dict(payload, shapes=per_shape, totals=totals))
        print(f'JSON written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
