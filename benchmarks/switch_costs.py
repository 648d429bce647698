#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""What each issue-23 switch costs in isolation, at the issue's ViT-S shapes.

A whole-step comparison cannot resolve a change worth 1 % of the step on a shared
machine; each switch replaces one well-delimited piece, timed here on its own
(mean of ``--repeats`` calls after one warm-up call, same thread count as the
step; the two newest jobs alternate the forms in four turns) in both forms:

- ``nonfinite_check``: the clip's total norm plus the skip decision, with the
  per-gradient ``isfinite`` check (``'per_grad'``) and read from the norm
  (``'grad_norm'``), over the student's real gradients after one step;
- ``ema_update``: ``PerA.update_teacher`` as ``'mul_add'`` and ``'lerp'``;
- ``mask_token_insert``: ``PerAViT.insert_mask_tokens`` forward + backward at the
  student's shapes (16 rows, cls + 39 s tokens + 39 mask tokens, 384 wide) as
  ``'gather'`` and ``'scatter'``;
- ``adamw``: ``AdamW.step`` over the student's parameters (random gradients) on
  the per-parameter loop (``fused=False``, what CPU torch picks by default) and
  the fused kernel (``fused=True``);
- ``linear_kernel``: one block (teacher: 16 rows x 119 tokens, forward only;
  student: 16 x 79, forward + backward) with ``'aten'`` and ``'auto_forward'``
  (oneDNN forward) linears;
- ``linear_grad_input``: the student block (16 x 79 and 16 x 40 tokens, forward
  + backward) with ``'auto_forward'`` and ``'auto'`` (oneDNN input gradient too);
- ``head_linear_kernel``: the heads at the step's rows with ``'aten'`` and
  ``'auto'`` linears: student and teacher DINO heads (80 cls rows each, the
  teacher's without grad) and the pixel predictor (624 mask-token rows),
  forward + backward;
- ``clip_in_step``: ``AutoAmpOptimWrapper.step`` (norm clip 3.0 and the fused
  AdamW step) over the real gradients of one step, the clip scaling the
  gradients itself and handing its factor to the fused step;
- ``pack_crops``: the student's global (16 x 40, then 16 x 79 tokens) and local
  (64 x 8) crops through ``forward_student``, forward + backward with the
  configured drop path, one path after the other and packed;
- ``attention_kernel``: the last block at the step's short sequences (teacher
  locals: 64 rows x 23 tokens, forward only; student locals 64 x 8 and student
  globals 16 x 40, forward + backward) with ``'sdpa'`` and ``'auto'`` (explicit
  softmax attention up to 64 keys);
- ``sparse_embed``: ``PerAViT.embed`` of the four sparse inputs (student and
  teacher, global and local crops, at the s and t patch counts; the student's
  forward + backward) by the whole-grid convolution and by the GEMM of the kept
  patches;
- ``subset_rows``: that student block with 'subset' drop path 0.3, rows picked
  by ``'advanced'`` indexing and by ``'index_select'``;
- ``prune_last_block``: the last block computing every token and only the read
  ones (teacher: cls; student: cls + 39 mask tokens).

Example::

    python benchmarks/switch_costs.py --threads 2 --out benchmarks/results/switch_costs_cpu.json
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from _against_commit import ISSUE_SHAPES  # noqa: E402


def _alternating(fns, repeats, rounds=4):
    """Mean seconds per call of each of ``fns`` ({name: fn}), the forms timed in turns.

    ``rounds`` turns of ``repeats / rounds`` calls each, the order reversed every
    other turn, so that a drifting machine meets every form alike.
    """
    per_turn = max(repeats // rounds, 1)
    seconds = dict.fromkeys(fns, 0.0)
    for r in range(rounds):
        for name in list(fns)[:: 1 if r % 2 == 0 else -1]:
            seconds[name] += C.timed(fns[name], per_turn) / rounds
    return seconds


def _step_gradients(model, wrapper, batch):
    """The gradients of one step (``{param: grad}``) and a function putting them back."""
    model.zero_grad()
    with wrapper.optim_context(model):
        losses = model.loss(**model.data_preprocessor(batch, True))
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    grads = {p: p.grad.clone() for p in model.parameters() if p.grad is not None}

    def restore():
        for p, g in grads.items():
            p.grad.copy_(g)

    return grads, restore


def nonfinite_costs(model, optim_cfg, batch, repeats):
    import torch
    from mmengine.optim import build_optim_wrapper

    wrappers = {}
    for check in ('per_grad', 'grad_norm'):
        cfg = dict(optim_cfg, nonfinite_check=check)
        wrappers[check] = build_optim_wrapper(model, cfg)
    grads, restore = _step_gradients(model, wrappers['per_grad'], batch)

    def per_grad():
        restore()
        w = wrappers['per_grad']
        w._loss_nonfinite = torch.zeros((), dtype=torch.bool)
        if not w._is_nonfinite():
            w._clip_grad()

    def grad_norm():
        restore()
        w = wrappers['grad_norm']
        w._loss_nonfinite = torch.zeros((), dtype=torch.bool)
        w._clip_and_check()

    restore_only = C.timed(restore, repeats)
    return dict(
        params_with_grad=len(grads),
        grad_numel=sum(g.numel() for g in grads.values()),
        seconds=dict(
            per_grad=C.timed(per_grad, repeats) - restore_only,
            grad_norm=C.timed(grad_norm, repeats) - restore_only,
        ),
    )


def clip_costs(model, optim_cfg, batch, repeats):
    """The clipped fused AdamW step, the clip apart and inside the step."""
    import torch
    from mmengine.optim import build_optim_wrapper

    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    wrappers = {
        f'clip_in_step={form}': build_optim_wrapper(model, dict(optim_cfg, clip_in_step=form))
        for form in (False, True)
    }
    grads, restore = _step_gradients(model, wrappers['clip_in_step=False'], batch)
    restore_only = C.timed(restore, repeats)
    for name, wrapper in wrappers.items():
        assert wrapper._clips_in_step() == name.endswith('True'), 'needs a fused AdamW'
    seconds = _alternating(
        {name: lambda w=w: restore() or w.step() for name, w in wrappers.items()}, repeats
    )
    seconds = {name: t - restore_only for name, t in seconds.items()}
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(saved[n])
    model.zero_grad(set_to_none=True)
    return dict(grad_numel=sum(g.numel() for g in grads.values()), seconds=seconds)


def pack_costs(vit, repeats, batch=8, n_global=2, n_local=8, ratio=0.2):
    """``forward_student`` with local crops, forward + backward, packed or not."""
    import torch

    g = torch.Generator().manual_seed(4)

    def crops(n, size):
        x = torch.randn(n * batch, 3, size, size, generator=g)
        n_patch = (size // vit.patch_size) ** 2
        perm = torch.stack([torch.randperm(n_patch, generator=g) for _ in x])
        k = int(n_patch * ratio)
        return x, perm[:, :k].sort(1).values, perm[:, k : 2 * k].sort(1).values

    x, s_idx, l_idx = crops(n_global, ISSUE_SHAPES['img_size'])
    x_loc, loc_idx, _ = crops(n_local, ISSUE_SHAPES['local_size'])
    token = torch.zeros(1, 1, vit.embed_dims, requires_grad=True)

    def run():
        out = vit(x, path='student', s_idx=s_idx, l_idx=l_idx, mask_token=token,
                  local_x=x_loc, local_idx=loc_idx)  # fmt: skip
        sum(o.sum() for o in out).backward()

    def form(packed):
        vit.pack_crops = packed
        run()

    seconds = _alternating({f'pack_crops={p}': lambda p=p: form(p) for p in (False, True)}, repeats)
    vit.zero_grad(set_to_none=True)
    return dict(seconds=seconds, drop_path=vit.blocks[0].drop_path)


def ema_costs(model, repeats):
    out = dict(seconds={})
    for form in ('mul_add', 'lerp'):
        model.ema_update = form
        out['seconds'][form] = C.timed(lambda: model.update_teacher(0.999), repeats)
    model.ema_update = 'lerp'
    out['teacher_numel'] = sum(t.numel() for t in model.ema_pairs()[0])
    return out


def insert_costs(vit, repeats, rows=16, n_s=39, n_l=39):
    import torch

    c, p = vit.embed_dims, vit.num_prefix_tokens
    g = torch.Generator().manual_seed(0)
    perm = torch.stack([torch.randperm(n_s + n_l + 10, generator=g) for _ in range(rows)])
    s_idx = perm[:, :n_s].sort(1).values
    l_idx = perm[:, n_s : n_s + n_l].sort(1).values
    _, order = torch.cat([s_idx, l_idx], 1).sort(1)
    rank = order.argsort(1) + p
    h = torch.randn(rows, p + n_s, c, requires_grad=True)
    tokens = torch.randn(rows, n_l, c, requires_grad=True)
    out = dict(rows=rows, n_s=n_s, n_l=n_l, channels=c, seconds={})
    for form in ('gather', 'scatter'):
        vit.mask_token_insert = form

        def fwd_bwd():
            vit.insert_mask_tokens(h, tokens, order, rank).sum().backward()

        out['seconds'][form] = C.timed(fwd_bwd, repeats)
    vit.mask_token_insert = 'scatter'
    return out


def _block_inputs(vit, rows, tokens, grad):
    import torch

    g = torch.Generator().manual_seed(1)
    x = torch.randn(rows, tokens, vit.embed_dims, generator=g)
    return x.requires_grad_(grad)


def _run_block(blk, x, queries=None):
    import torch

    if x.requires_grad:
        blk(x, queries=queries).sum().backward()
    else:
        with torch.no_grad():
            blk(x, queries=queries)


def adamw_costs(model, optim_cfg, repeats):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = {k: v for k, v in optim_cfg['optimizer'].items() if k not in ('type', 'fused')}
    out = dict(params=len(params), numel=sum(p.numel() for p in params), seconds={})
    saved = [p.detach().clone() for p in params]
    for fused in (False, True):
        for p in params:
            p.grad = torch.randn_like(p)
        opt = torch.optim.AdamW(params, fused=fused, **kwargs)
        out['seconds'][f'fused={fused}'] = C.timed(opt.step, repeats)
    with torch.no_grad():
        for p, v in zip(params, saved):
            p.copy_(v)
            p.grad = None
    return out


def block_costs(vit, repeats, attr, forms, cases):
    """``cases``: (name, rows, tokens, grad, queries) run on the last block."""
    blk = vit.blocks[-1]
    out = dict(seconds={})
    for form in forms:
        attr(blk, form)
        total = 0.0
        for _, rows, tokens, grad, queries in cases:
            x = _block_inputs(vit, rows, tokens, grad)
            total += C.timed(lambda x=x, q=queries: _run_block(blk, x, q(form)), repeats)
        out['seconds'][str(form)] = total
    attr(blk, forms[-1])
    out['cases'] = [c[:4] for c in cases]
    return out


def head_costs(model, repeats, rows=80, pixel_rows=624):
    import torch

    g = torch.Generator().manual_seed(2)
    width = model.backbone.embed_dims
    cls = torch.randn(rows, width, generator=g)
    tokens = torch.randn(pixel_rows, width, generator=g)
    heads = (model.projector, model.teacher.projector, model.predictor)

    def run():
        s = cls.detach().requires_grad_(True)
        p = tokens.detach().requires_grad_(True)
        (model.projector(s).sum() + model.predictor(p).sum()).backward()
        with torch.no_grad():
            model.teacher.projector(cls)

    out = dict(seconds={}, rows=rows, pixel_rows=pixel_rows)
    for form in ('aten', 'auto'):
        for head in heads:
            head.linear_kernel = form
        out['seconds'][form] = C.timed(run, repeats)
    model.zero_grad(set_to_none=True)
    return out


def embed_costs(vit, repeats, batch=8, n_global=2, n_local=8, ratios=(0.2, 0.6)):
    import torch

    g = torch.Generator().manual_seed(3)
    cases = []
    for crops, size in (
        (n_global, ISSUE_SHAPES['img_size']),
        (n_local, ISSUE_SHAPES['local_size']),
    ):
        n_patch = (size // vit.patch_size) ** 2
        x = torch.randn(crops * batch, 3, size, size, generator=g)
        for ratio, grad in zip(ratios, (True, False)):  # student s, teacher t
            k = int(n_patch * ratio)
            idx = torch.stack([torch.randperm(n_patch, generator=g)[:k].sort().values for _ in x])
            cases.append((x, idx, grad))

    def run():
        for x, idx, grad in cases:
            with torch.set_grad_enabled(grad):
                _, patches, _ = vit.embed(x, idx)
            if grad:
                patches.sum().backward()

    out = dict(seconds={}, cases=[(tuple(x.shape), idx.shape[1], grad) for x, idx, grad in cases])
    for form in (False, True):
        vit.sparse_embed = form
        out['seconds'][f'sparse_embed={form}'] = C.timed(run, repeats)
    vit.zero_grad(set_to_none=True)
    return out


def _set_attention(blk, kernel):
    blk.attn.attention_kernel = kernel


def _set_kernel(blk, kernel):
    blk.attn.linear_kernel = blk.mlp.linear_kernel = kernel


def _set_rows(blk, rows):
    blk.subset_rows = rows


def _no_queries(form):
    return None


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--threads', type=int, default=2, help='torch threads (2)')
    p.add_argument('--repeats', type=int, default=20, help='timed calls per form (20)')
    p.add_argument('--out', default=None, help='JSON output path')
    return p


def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        raise SystemExit('switch_costs.py: --repeats and --threads must be >= 1')
    import numpy as np
    import torch
    from _methods import build_method
    from mmengine.registry import DefaultScope
    from tqdm import tqdm

    import pera_mm  # noqa: F401
    from pera_mm.testing import synthetic_batch

    torch.set_num_threads(args.threads)
    C.quiet_mmengine()
    DefaultScope.get_instance('switch-costs', scope_name='mmpretrain')
    torch.manual_seed(0)
    np.random.seed(0)
    model, transforms, optim_cfg, _ = build_method(dict(ISSUE_SHAPES))
    model.train()
    batch = synthetic_batch(transforms, ISSUE_SHAPES['batch'], 256, seed=1)
    results = {}
    jobs = [
        ('nonfinite_check', lambda: nonfinite_costs(model, optim_cfg, batch, args.repeats)),
        ('ema_update', lambda: ema_costs(model, args.repeats)),
        ('mask_token_insert', lambda: insert_costs(model.backbone, args.repeats)),
        ('adamw', lambda: adamw_costs(model, optim_cfg, args.repeats)),
    ]
    vit = model.backbone

    def block_job(name, attr, forms, cases):
        """A :func:`block_costs` job over ``cases`` (name, rows, tokens, grad): all tokens."""
        cases = [(*c, _no_queries) for c in cases]
        jobs.append((name, lambda: block_costs(vit, args.repeats, attr, forms, cases)))

    shapes = [('teacher', 16, 119, False), ('student', 16, 79, True)]
    student_s = ('student_s', 16, 40, True)
    block_job('linear_kernel', _set_kernel, ('aten', 'auto_forward'), shapes)
    block_job('linear_grad_input', _set_kernel, ('auto_forward', 'auto'), [shapes[1], student_s])
    jobs.append(('head_linear_kernel', lambda: head_costs(model, args.repeats)))
    jobs.append(('clip_in_step', lambda: clip_costs(model, optim_cfg, batch, args.repeats)))
    jobs.append(('pack_crops', lambda: pack_costs(vit, args.repeats)))
    short = [('teacher_local', 64, 23, False), ('student_local', 64, 8, True), student_s]
    block_job('attention_kernel', _set_attention, ('sdpa', 'auto'), short)
    jobs.append(('sparse_embed', lambda: embed_costs(vit, args.repeats)))

    def subset_rows_costs():
        blk, rate = vit.blocks[-1], vit.blocks[-1].drop_path
        blk.drop_path = 0.3
        out = block_costs(
            vit, args.repeats, _set_rows, ('advanced', 'index_select'),
            [(*shapes[1], _no_queries)],
        )  # fmt: skip
        blk.drop_path = rate
        return out

    jobs.append(('subset_rows', subset_rows_costs))
    cls_only = torch.zeros(16, 1, dtype=torch.long)
    cls_and_mask = torch.arange(40).expand(16, -1)

    def queries_of(which):
        return lambda prune: which if prune else None

    jobs.append(
        (
            'prune_last_block',
            lambda: block_costs(
                vit, args.repeats, lambda blk, prune: None, (False, True),
                [(*shapes[0], queries_of(cls_only)), (*shapes[1], queries_of(cls_and_mask))],
            ),
        )
    )  # fmt: skip
    for name, job in tqdm(jobs, desc='switches', unit='switch'):
        results[name] = job()
    rows = []
    for name, r in results.items():
        (old, t_old), (new, t_new) = r['seconds'].items()
        rows.append((name, old, t_old * 1e3, new, t_new * 1e3, t_old / t_new))
    print(C.table(rows, ('switch', 'earlier form', 'ms', 'default', 'ms', 'ratio')))
    if args.out:
        payload = dict(meta=C.machine_info(), threads=args.threads, repeats=args.repeats)
        C.write_json(args.out, dict(payload, **results))
        print(f'JSON written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
