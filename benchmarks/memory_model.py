#!/usr/bin/env python
# Copyright (c) pera-mm contributors. All rights reserved.
"""FSDP memory model of PerA pretraining (default: the slim ViT-G/16-1024 config).

Nothing big is allocated. Parameter counts and FSDP units come from the real
model built on the meta device (``torch.device('meta')``) from the config.
Transformer-block activations come from PerA's token counts
(``disjoint_counts`` on the config's crops and mask ratios) and a per-token
formula, checked against one real block on CPU. Everything outside the blocks
(patch embedding, gathers, DINO head and its loss -- chunked or not, as the
config says --, pixel head, KoLeo) is measured on CPU: the config's own model
at the real width but depth 2, bf16 autocast, saved-tensor hooks, batch 1 and
2 -> bytes per sample and per step. A depth-4 run checks the extrapolation.

Model (bytes per GPU, N GPUs, FSDP FULL_SHARD, autocast bf16, fp32 params)
-------------------------------------------------------------------------
persistent  = (4 * (P_student + P_teacher) + 4 * P_student + 8 * P_student) / N
              fp32 params (student + EMA teacher), fp32 grads, AdamW exp_avg +
              exp_avg_sq; the teacher has no grads or optimizer state.
gathered    = 4 * (root + 2 * largest unit) + 4 * (root + largest unit)
              all-gathered fp32 parameters (the root unit stays gathered, one
              unit is prefetched) and unsharded grads before reduce-scatter;
              units follow the config's wrap policy (``pera_fsdp_wrap_policy``:
              each block, backbone and head; or size-based).
bf16 copies = autocast saves a bf16 copy of every block weight it uses for
              backward: 2 * P_blocks UNSHARDED without checkpointing (FSDP
              frees its gathered fp32 weights, not autocast's copies), one
              block's worth with checkpointing.
per step    = measured non-block constant (head weight copies, the
              weight-normalised prototype matrices, ...).
per sample, student blocks (h = dim, f = MLP dim, p = drop-path rate):
  A = (1 - p) * (20 h + 4 f + 8 h [p > 0]) bytes per token per block
      (LN1 input fp32 4h, its bf16 output 2h, q/k/v 6h, SDPA output 2h -- the
       proj input is a view of it --, LN2 input fp32 4h + bf16 output 2h,
       fc1 output 2f, GELU output 2f; 'subset' drop path computes branches on
       (1 - p) of the rows, and autograd then also keeps the fp32 source of
       both ``index_add`` calls, 2 x 4h)
  non-fused attention adds (1 - p) * 6 * heads * T bytes per token (fp32
      softmax output + its bf16 copy; T = sequence length)
  no checkpointing:  sum over student paths of crops * tokens * A * blocks
  checkpointing:     4 h bytes per token per block (the fp32 block input)
                     + one block recomputed in backward with fp32 input/output
                     grads (largest path, transient)
  + measured non-block bytes per sample
  the teacher's no-grad forward (one block at a time, ~(14 h + 4 f) bytes per
  token) runs before the student and counts only if larger.
max batch per GPU = floor((capacity - reserve - persistent - gathered
                           - bf16 copies - per step) / per sample)

Tokens at 448 px (28 x 28 = 784 patches, s/l/t = 0.2/0.2/0.6): student cls +
157 s for blocks [0, depth/2), cls + 157 s + 157 l after; teacher cls + 470 t;
96 px local crops (36 patches): student cls + 7, teacher cls + 22.

With ``--paper-setting`` it instead projects PerA vs the DINOv2-style baseline
on ONE GPU at the paper's resource-table setting (ViT-B, batch 16, 2 x 512 px
global + 8 x 96 px local crops, no FSDP, no checkpointing), in fp32 and in bf16
autocast, with fused SDPA attention (ours) and with materialised attention
matrices (like the reference DINOv2 the paper measured). The same per-token
formulas, checked on CPU by one real ViT-B block (fp32 and bf16) and a depth-3
model of each method; non-block terms measured on CPU at depth 2 (the
baseline's block masks fixed at their expected fraction). Printed next to the
paper's 6.64 / 26.16 GB and our measured CPU ratios (``benchmarks/results``).
Nothing is fitted to the paper's figures.

Examples::

    python benchmarks/memory_model.py
    python benchmarks/memory_model.py --paper-setting --out paper_memory.json
    python benchmarks/memory_model.py --gpus 8 16 32 64 --gpu-mem-gb 80 --out mem.json
"""

import argparse
import math
import sys
from pathlib import Path

import _common as C
from _activations import block_terms, calibrate_block, measure_nonblock, token_counts, validate
from _paper_memory import run as paper_setting
from _params import build_meta, fsdp_units, numel, wrap_policy
from mmengine.config import Config

GIANT_CFG = 'configs/pera/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px.py'
GiB = 2**30


def make_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--config', default=GIANT_CFG)
    p.add_argument('--gpus', type=int, nargs='+', default=[8, 16, 32])
    p.add_argument(
        '--gpu-mem-gb', type=float, default=40.0, help='device memory in GiB (A100 40GB)'
    )
    p.add_argument(
        '--reserve-gb',
        type=float,
        default=2.5,
        help='CUDA context, NCCL buffers, cuBLAS workspace, allocator fragmentation (GiB)',
    )
    p.add_argument('--prototypes', type=int, default=None, help='default: from the config')
    p.add_argument(
        '--min-num-params',
        type=float,
        default=None,
        help='model a size-based FSDP wrap policy with this threshold instead '
        "of the config's policy",
    )
    p.add_argument(
        '--no-measure',
        action='store_true',
        help='skip the CPU checks and the measured non-block terms (fast, blocks only)',
    )
    p.add_argument(
        '--paper-setting',
        action='store_true',
        help='instead: project PerA vs the DINOv2-style baseline on one GPU at '
        "the paper's setting (ViT-B, batch 16, 2 global + 8 local crops)",
    )
    p.add_argument(
        '--paper-global-size',
        type=int,
        default=512,
        help='global crop side of --paper-setting (default 512)',
    )
    p.add_argument(
        '--paper-local-size',
        type=int,
        default=96,
        help='local crop side of --paper-setting (default 96)',
    )
    p.add_argument('--paper-batch', type=int, default=16, help='batch of --paper-setting (16)')
    p.add_argument('--out', default=None)
    return p


# -------------------------------------------------------------------- main
def main(argv=None):
    args = make_parser().parse_args(argv)
    if args.paper_setting:
        return paper_setting(args)
    cfg_path = Path(args.config)
    cfg = Config.fromfile(cfg_path if cfg_path.is_absolute() else C.REPO / cfg_path)
    if args.prototypes:
        cfg.model.projector.out_channels = args.prototypes
        cfg.model.cls_loss.out_channels = args.prototypes
    K = cfg.model.projector.out_channels
    policy = wrap_policy(cfg, args.min_num_params)
    model = build_meta(cfg)
    bb = model.backbone
    arch = bb.arch_settings
    h, f, heads, depth = (
        arch['embed_dims'],
        arch['feedforward_channels'],
        arch['num_heads'],
        arch['num_layers'],
    )
    p = float(cfg.model.backbone.get('drop_path_rate', 0.0))
    if cfg.model.backbone.get('drop_path_mode', 'subset') != 'subset':
        p = 0.0  # 'row' mode computes every row (and keeps no index_add sources)
    P = dict(
        student_backbone=numel(model.backbone),
        student_projector=numel(model.projector),
        predictor=numel(model.predictor) if model.predictor is not None else 0,
        mask_token=model.mask_token.numel(),
        teacher_backbone=numel(model.teacher.backbone),
        teacher_projector=numel(model.teacher.projector),
    )
    P_s = P['student_backbone'] + P['student_projector'] + P['predictor'] + P['mask_token']
    P_t = P['teacher_backbone'] + P['teacher_projector']
    P_blocks = sum(numel(b) for b in bb.blocks)
    P_block = numel(bb.blocks[0])
    units, root = fsdp_units(model, policy)
    non_root = sorted(units[:-1], reverse=True)
    largest = non_root[0] if non_root else 0
    gathered = 4 * (root + 2 * largest) + 4 * (root + largest)
    tk = token_counts(cfg, depth, bb.mask_token_layer)
    bt = block_terms(tk, h, f, heads, p)

    calib = validation = None
    if args.no_measure:
        nonblock = dict(per_sample=0.0, per_step=0.0, note='not measured (--no-measure)')
    else:
        C.quiet_mmengine()
        calib = calibrate_block(h, heads, f)
        nonblock = measure_nonblock(cfg, tk, h, f)
        validation = validate(cfg, tk, h, f, nonblock)

    capacity, reserve = args.gpu_mem_gb * GiB, args.reserve_gb * GiB
    cfg_batch = cfg.train_dataloader.batch_size
    cfg_ckpt = bool(cfg.model.backbone.get('with_cp', False))
    variants = [
        ('ckpt, fused attn', True, True),
        ('no ckpt, fused attn', False, True),
        ('ckpt, non-fused', True, False),
        ('no ckpt, non-fused', False, False),
    ]

    def per_sample(ckpt, fused):
        if ckpt:
            student = bt['kept_checkpointed'] + (
                bt['recompute_transient'] if fused else bt['recompute_transient_nonfused']
            )
        else:
            student = bt['saved_fused'] + (0 if fused else bt['saved_attn_extra_nonfused'])
        return max(student + nonblock['per_sample'], bt['teacher_transient'])

    weight_copies = {True: 2 * P_block, False: 2 * P_blocks}
    per_gpu = []
    for n in args.gpus:
        persistent = dict(
            params_fp32=4 * (P_s + P_t) / n, grads_fp32=4 * P_s / n, adamw_states=8 * P_s / n
        )
        pers = sum(persistent.values())
        entry = dict(
            gpus=n,
            persistent_bytes=persistent,
            persistent_total=pers,
            gathered=gathered,
            variants={},
        )
        for name, ckpt, fused in variants:
            ps = per_sample(ckpt, fused)
            fixed = pers + gathered + weight_copies[ckpt] + nonblock['per_step']
            left = capacity - reserve - fixed
            mb = max(0, math.floor(left / ps))
            entry['variants'][name] = dict(
                checkpoint=ckpt,
                fused_attention=fused,
                bf16_weight_copies=weight_copies[ckpt],
                fixed_bytes=fixed,
                free_for_activations=left,
                per_sample_bytes=ps,
                max_batch_per_gpu=mb,
                config_batch_fits=mb >= cfg_batch,
                global_batch=mb * n,
            )
        per_gpu.append(entry)

    # ------------------------------------------------------------------ print
    print(f'Config: {args.config}')
    print(
        f'ViT: dim {h}, depth {depth}, heads {heads}, MLP {f}; drop path {p} (subset); '
        f'K = {K}; {tk["global_size"]} px globals x{tk["num_global"]}, '
        f'{tk["local_size"]} px locals x{tk["num_local"]}; mask ratios {tk["ratios"]}; '
        f'DINO loss chunk {cfg.model.cls_loss.get("chunk_size")}; with_cp {cfg_ckpt}'
    )
    print('\nParameters (model built on the meta device)')
    print(
        C.table(
            [[k, v / 1e6] for k, v in P.items()]
            + [['student (trainable)', P_s / 1e6], ['teacher (EMA)', P_t / 1e6]],
            ['part', 'M params'],
        )
    )
    pol_text = (
        'pera_fsdp_wrap_policy'
        if policy[0] == 'class'
        else f'size_based_auto_wrap_policy, min_num_params={policy[1]:.0e}'
    )
    print(
        f'\nFSDP units ({pol_text}): '
        f'{len(units)} units, largest non-root {largest / 1e6:.1f} M, root {root / 1e6:.2f} M'
        f' -> gathered fp32 params + grads {gathered / GiB:.2f} GiB'
    )
    print('\nTokens per sample entering the blocks')
    trow = [[f'student {name}', r, t, b] for name, r, t, b in tk['student_paths']]
    trow += [[f'teacher {name}', r, t, b] for name, r, t, b in tk['teacher_paths']]
    print(C.table(trow, ['path', 'crops', 'tokens', 'blocks']))
    print(
        f'\nStudent block bytes per token per block (fused SDPA, bf16): '
        f'(1-p)(20h+4f+8h[p>0]) = {bt["per_token_block_bytes"]:.0f} B '
        f'= {bt["per_token_block_bytes"] / h:.1f} h'
    )
    rows = [[k, v / 2**20] for k, v in bt.items() if k != 'per_token_block_bytes']
    rows += [
        ['non-block, per sample (measured)', nonblock['per_sample'] / 2**20],
        ['non-block, per step (measured)', nonblock['per_step'] / 2**20],
    ]
    print(C.table(rows, ['term', 'MiB']))
    if calib:
        print('\nCheck 1: one Block at this width, CPU bf16 autocast, saved-tensor hooks')
        print(
            C.table(
                [
                    [
                        k,
                        v['measured_bytes_per_token'],
                        v['formula_bytes_per_token'],
                        v['ratio'],
                        v['per_call_bytes'] / 2**20,
                        v['bf16_weight_copy_bytes'] / 2**20,
                    ]
                    for k, v in calib.items()
                ],
                [
                    'drop path',
                    'measured B/token',
                    'formula B/token',
                    'ratio',
                    'per call MiB',
                    '2 x block params MiB',
                ],
            )
        )
    if validation:
        print("\nCheck 2: the config's model at depth 4, batch 3 (drop path 0): saved bytes")
        print(
            C.table(
                [
                    [k, v['measured'] / 2**20, v['predicted'] / 2**20, v['ratio']]
                    for k, v in validation.items()
                ],
                ['variant', 'measured MiB', 'predicted MiB', 'ratio'],
            )
        )
    print(
        f'\nPer GPU on a {args.gpu_mem_gb:g} GiB device (reserve {args.reserve_gb:g} GiB for '
        f'CUDA context, NCCL, workspaces, fragmentation); FSDP over N GPUs; '
        f'config: batch {cfg_batch}/GPU, with_cp={cfg_ckpt}'
    )
    rows = []
    for e in per_gpu:
        pb = e['persistent_bytes']
        row = [e['gpus'], pb['params_fp32'] / GiB, pb['grads_fp32'] / GiB, pb['adamw_states'] / GiB]
        for name, _, _ in variants:
            v = e['variants'][name]
            row += [v['per_sample_bytes'] / 2**20, v['max_batch_per_gpu']]
        rows.append(row)
    hdr = ['N', 'params GiB', 'grads GiB', 'AdamW GiB']
    for name, _, _ in variants:
        hdr += [f'{name}: MiB/sample', 'max batch']
    print(C.table(rows, hdr))
    print(
        f'+ per GPU: gathered {gathered / GiB:.2f} GiB; bf16 weight copies '
        f'{weight_copies[False] / GiB:.2f} GiB without checkpointing, '
        f'{weight_copies[True] / GiB:.3f} GiB with it; non-block per step '
        f'{nonblock["per_step"] / GiB:.2f} GiB'
    )
    payload = dict(
        meta=C.machine_info(),
        config=args.config,
        arch=dict(
            dim=h,
            depth=depth,
            heads=heads,
            mlp=f,
            drop_path=p,
            prototypes=K,
            chunk_size=cfg.model.cls_loss.get('chunk_size'),
            with_cp=cfg_ckpt,
        ),
        params=P,
        student_params=P_s,
        teacher_params=P_t,
        block_params=P_blocks,
        fsdp=dict(
            policy=list(policy),
            num_units=len(units),
            root=root,
            largest_unit=largest,
            gathered_bytes=gathered,
        ),
        tokens=tk,
        block_terms=bt,
        nonblock=nonblock,
        calibration=calib,
        validation=validation,
        weight_copies=dict(checkpoint=weight_copies[True], no_checkpoint=weight_copies[False]),
        capacity_bytes=capacity,
        reserve_bytes=reserve,
        config_batch=cfg_batch,
        per_gpu=per_gpu,
    )
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
