# Copyright (c) pera-mm contributors. All rights reserved.
"""PerA vs the DINOv2-style baseline on one GPU at the paper's setting (``memory_model.py
--paper-setting``): ViT-B, batch 16, 2 global + 8 local crops, fp32 and bf16, fused and
materialised attention, next to the paper's figures and our measured CPU ratios."""

import copy
import json
from pathlib import Path

import _common as C
from _activations import (
    ATTN_ELEMENT_BYTES,
    TEACHER_TRANSIENT,
    baseline_token_counts,
    calibrate_attention,
    calibrate_block,
    measure_nonblock,
    per_token_block_bytes,
    token_counts,
    validate,
)
from _params import build_meta, numel
from mmengine.config import Config

GiB = 2**30
PERA_CFG = 'configs/pera/pera_vit-base-p16_8xb24-200e_rsrsd-448px.py'
BASELINE_CFG = 'configs/pera/ablations/dinov2-baseline_vit-base-p16_8xb24-200e_rsrsd-448px.py'
# The paper's resource table (shared/design/method.md section 1.8): ViT-B, 512 px,
# batch 16, one A100, precision not stated; GPU memory in GB of PerA and DINOv2
PAPER_GPU_MEMORY_GB = dict(pera=6.64, dinov2=26.16)
# our CPU runs of benchmarks/train_step.py whose PerA / baseline ratios are printed alongside
CPU_RESULT_FILES = ('train_step_cpu.json', 'train_step_base448_cpu.json')


def paper_config(path, args):
    """A shipped config at the paper's setting: ViT-B, the given crop sides, no checkpointing."""
    cfg = Config.fromfile(C.REPO / path)
    cfg.model.backbone.update(arch='base', img_size=args.paper_global_size, with_cp=False)
    if args.prototypes:
        cfg.model.projector.out_channels = args.prototypes
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'PerAMultiCropViews':
            t.update(global_crop_size=args.paper_global_size, local_crop_size=args.paper_local_size)
    return cfg


def fixed_block_masks(cfg, fraction):
    """A copy of the baseline config whose block masks always cover ``fraction`` of a
    global crop (its expected value), so a measurement on a few samples is typical."""
    cfg = copy.deepcopy(cfg)
    for t in cfg.train_dataloader.dataset.pipeline:
        if t['type'] == 'DisjointMaskGenerator':
            t.update(block_mask_prob=1.0, block_mask_ratio=(fraction, fraction))
    return cfg


def method_parts(cfg):
    """Parameter counts (student trainable, EMA teacher, student blocks) and ViT dims."""
    model = build_meta(cfg)
    arch = model.backbone.arch_settings
    return dict(
        student=sum(q.numel() for q in model.parameters() if q.requires_grad),
        teacher=numel(model.teacher),
        blocks=numel(model.backbone.blocks),
        h=arch['embed_dims'],
        f=arch['feedforward_channels'],
        heads=arch['num_heads'],
        depth=arch['num_layers'],
        mask_token_layer=model.backbone.mask_token_layer,
        drop_path=float(cfg.model.backbone.get('drop_path_rate', 0.0)),
    )


def project_single_gpu(parts, tk, nonblock, batch, precision, fused):
    """Bytes on one GPU: persistent state, weight copies, per-step and per-sample terms."""
    h, f, heads, p = parts['h'], parts['f'], parts['heads'], parts['drop_path']
    A = per_token_block_bytes(h, f, p, precision)
    attn = 0 if fused else ATTN_ELEMENT_BYTES[precision] * heads
    student = sum(r * t * ((A + (1 - p) * attn * t) * b) for _, r, t, b in tk['student_paths'])
    teacher = max(
        r * t * (TEACHER_TRANSIENT[precision](h, f) + attn * t)
        for _, r, t, _ in tk['teacher_paths']
    )
    per_sample = max(student + nonblock['per_sample'], teacher)
    P_s, P_t = parts['student'], parts['teacher']
    terms = dict(
        params_fp32=4 * (P_s + P_t),
        grads_fp32=4 * P_s,
        adamw_states=8 * P_s,
        bf16_weight_copies=2 * parts['blocks'] if precision == 'bf16' else 0,
        non_block_per_step=nonblock['per_step'],
        activations=batch * per_sample,
    )
    return dict(
        terms,
        student_blocks_per_sample=student,
        teacher_transient_per_sample=teacher,
        per_sample=per_sample,
        total=sum(terms.values()),
    )


def measured_cpu_ratios(results_dir):
    """PerA / baseline ratios at ViT-B from our CPU train_step runs (benchmarks/results)."""
    rows = []
    for name in CPU_RESULT_FILES:
        path = Path(results_dir) / name
        if not path.is_file():
            continue
        d = json.loads(path.read_text())
        r = d.get('ratios', {}).get('base', {}).get('pera_vs_baseline')
        if r is None:
            continue
        a = d['meta']['args']
        rows.append(
            dict(
                file=name,
                img_size=a['img_size'],
                batch=a['batch'],
                peak_rss=r['peak_mem'],
                live_tensor_peak=r['tensor_peak'],
                activations=r['tensor_dynamic_peak'],
            )
        )
    return rows


def run(args):
    C.quiet_mmengine()
    cfgs = dict(pera=paper_config(PERA_CFG, args), baseline=paper_config(BASELINE_CFG, args))
    parts = {m: method_parts(c) for m, c in cfgs.items()}
    pp = parts['pera']
    tks = dict(
        pera=token_counts(cfgs['pera'], pp['depth'], pp['mask_token_layer']),
        baseline=baseline_token_counts(cfgs['baseline'], parts['baseline']['depth']),
    )
    masked = tks['baseline']['expected_masked_per_global'] / tks['baseline']['global_patches']
    precisions = ('fp32', 'bf16')
    nonblock, checks = {}, {}
    for prec in precisions:
        for m in cfgs:
            if args.no_measure:
                nonblock[m, prec] = dict(per_sample=0.0, per_step=0.0, note='--no-measure')
                continue
            cfg = fixed_block_masks(cfgs[m], masked) if m == 'baseline' else cfgs[m]
            # the depth-2 paths of this model (the PerA mask tokens enter at block 1)
            tk2 = token_counts(cfg, 2, 1) if m == 'pera' else baseline_token_counts(cfg, 2)
            nonblock[m, prec] = measure_nonblock(cfg, tk2, pp['h'], pp['f'], precision=prec)
            tk3 = token_counts(cfg, 3, 1) if m == 'pera' else baseline_token_counts(cfg, 3)
            checks[m, prec] = validate(
                cfg,
                tk3,
                pp['h'],
                pp['f'],
                nonblock[m, prec],
                depth=3,
                batch=2,
                precision=prec,
                checkpoints=(False,),
            )
    calib = {}
    if not args.no_measure:
        for prec in precisions:
            calib[prec] = dict(
                block=calibrate_block(pp['h'], pp['heads'], pp['f'], precision=prec),
                attention=calibrate_attention(pp['h'], pp['heads'], pp['f'], precision=prec),
            )
    proj = {}
    for prec in precisions:
        for fused in (True, False):
            for m in cfgs:
                proj[m, prec, fused] = project_single_gpu(
                    parts[m], tks[m], nonblock[m, prec], args.paper_batch, prec, fused
                )
    cpu = measured_cpu_ratios(C.REPO / 'benchmarks' / 'results')
    paper_ratio = PAPER_GPU_MEMORY_GB['pera'] / PAPER_GPU_MEMORY_GB['dinov2']
    print_paper(args, cfgs, parts, tks, masked, nonblock, checks, calib, proj, cpu, paper_ratio)
    if args.out:
        C.write_json(
            args.out,
            dict(
                meta=C.machine_info(),
                setting=dict(
                    arch='base',
                    global_size=args.paper_global_size,
                    local_size=args.paper_local_size,
                    batch=args.paper_batch,
                    prototypes=cfgs['pera'].model.projector.out_channels,
                    baseline_masked_fraction=masked,
                ),
                params=parts,
                tokens=tks,
                nonblock={f'{m}/{p}': v for (m, p), v in nonblock.items()},
                checks={f'{m}/{p}': v for (m, p), v in checks.items()},
                calibration=calib,
                projection={
                    f'{m}/{p}/{"fused" if fu else "non-fused"}': v for (m, p, fu), v in proj.items()
                },
                ratios={
                    f'{p}/{"fused" if fu else "non-fused"}': proj['pera', p, fu]['total']
                    / proj['baseline', p, fu]['total']
                    for (_, p, fu) in proj
                },
                paper=dict(PAPER_GPU_MEMORY_GB, ratio=paper_ratio),
                measured_cpu=cpu,
            ),
        )
        print(f'\nJSON written to {args.out}')
    return 0


def print_paper(args, cfgs, parts, tks, masked, nonblock, checks, calib, proj, cpu, ratio):
    pp, tp = parts['pera'], tks['pera']
    print(
        f'Paper setting, one GPU: ViT-B/16 (dim {pp["h"]}, depth {pp["depth"]}, heads '
        f'{pp["heads"]}), batch {args.paper_batch}, {tp["num_global"]} global crops of '
        f'{tp["global_size"]} px ({tp["global_patches"]} patches) + {tp["num_local"]} local '
        f'crops of {tp["local_size"]} px ({tp["local_patches"]} patches), K = '
        f'{cfgs["pera"].model.projector.out_channels}, drop path {pp["drop_path"]} (subset), '
        f'no activation checkpointing; PerA masks s/l/t {tp["ratios"]}; baseline block '
        f'masks {100 * masked:.0f} % of a global crop on average'
    )
    print(
        'Counted: fp32 params (student + EMA teacher), fp32 grads and AdamW exp_avg + '
        'exp_avg_sq (student), bf16 weight copies (bf16 only), tensors saved for backward '
        "(blocks: per-token formula; the rest measured on CPU at depth 2), or the teacher's "
        'no-grad working set if larger. Not counted: CUDA context, cuBLAS/NCCL workspaces, '
        'allocator fragmentation, transient gradients during backward. GB = 2^30 bytes.'
    )
    rows = []
    for m in ('pera', 'baseline'):
        for name, r, t, b in tks[m]['student_paths']:
            rows.append([m, f'student {name}', r, t, b])
        for name, r, t, b in tks[m]['teacher_paths']:
            rows.append([m, f'teacher {name}', r, t, b])
    print('\nTokens per sample entering the blocks')
    print(C.table(rows, ['method', 'path', 'crops', 'tokens', 'blocks']))
    rows = []
    for m in ('pera', 'baseline'):
        rows.append(
            [
                m,
                parts[m]['student'] / 1e6,
                parts[m]['teacher'] / 1e6,
                nonblock[m, 'fp32']['per_sample'] / 2**20,
                nonblock[m, 'bf16']['per_sample'] / 2**20,
                nonblock[m, 'bf16']['per_step'] / 2**20,
            ]
        )
    print('\nParameters and measured non-block terms')
    print(
        C.table(
            rows,
            [
                'method',
                'student M',
                'teacher M',
                'non-block fp32 MiB/sample',
                'bf16 MiB/sample',
                'bf16 MiB/step',
            ],
        )
    )
    if checks:
        print('\nCheck: the model at depth 3, batch 2, saved bytes measured vs predicted')
        print(
            C.table(
                [
                    [
                        m,
                        p,
                        v['no_checkpoint']['measured'] / 2**20,
                        v['no_checkpoint']['predicted'] / 2**20,
                        v['no_checkpoint']['ratio'],
                    ]
                    for (m, p), v in checks.items()
                ],
                ['method', 'precision', 'measured MiB', 'predicted MiB', 'ratio'],
            )
        )
    if calib:
        print('\nCheck: one ViT-B block on CPU (measured / formula)')
        print(
            C.table(
                [
                    [
                        p,
                        c['block']['p=0.0']['ratio'],
                        c['block']['p=0.3']['ratio'],
                        c['attention']['measured_bytes_per_element'],
                        c['attention']['formula_bytes_per_element'],
                        c['attention']['ratio'],
                    ]
                    for p, c in calib.items()
                ],
                [
                    'precision',
                    'block p=0',
                    'block p=0.3',
                    'attn B/element (CPU)',
                    'formula',
                    'ratio',
                ],
            )
        )
        print(
            f'  non-fused attention on a GPU under bf16 autocast keeps '
            f'{ATTN_ELEMENT_BYTES["bf16"]} B per element (fp32 softmax output + its bf16 '
            f'copy); CPU autocast keeps softmax in bf16 ({ATTN_ELEMENT_BYTES["bf16_cpu"]} B)'
        )
    rows = []
    for prec in ('fp32', 'bf16'):
        for fused in (True, False):
            p_, b_ = proj['pera', prec, fused], proj['baseline', prec, fused]
            for m, v in (('PerA', p_), ('baseline', b_)):
                pers = v['params_fp32'] + v['grads_fp32'] + v['adamw_states']
                rows.append(
                    [
                        prec,
                        'fused SDPA' if fused else 'materialised',
                        m,
                        pers / GiB,
                        v['bf16_weight_copies'] / GiB,
                        v['non_block_per_step'] / GiB,
                        v['activations'] / GiB,
                        v['total'] / GiB,
                        p_['total'] / b_['total'] if m == 'baseline' else None,
                    ]
                )
    print(f'\nProjected GPU memory at batch {args.paper_batch} (GB)')
    print(
        C.table(
            rows,
            [
                'precision',
                'attention',
                'method',
                'params+grads+AdamW',
                'weight copies',
                'per step',
                'activations',
                'total',
                'PerA / baseline',
            ],
        )
    )
    for prec in ('fp32', 'bf16'):
        cross = proj['pera', prec, True]['total'] / proj['baseline', prec, False]['total']
        print(f'  {prec}: PerA fused / baseline materialised = {cross:.3f}')
    print(
        f'\nPaper (method.md 1.8, A100): PerA {PAPER_GPU_MEMORY_GB["pera"]} GB vs DINOv2 '
        f'{PAPER_GPU_MEMORY_GB["dinov2"]} GB -> {ratio:.3f}'
    )
    if cpu:
        print('Measured on CPU, ViT-B, PerA / baseline (benchmarks/results):')
        print(
            C.table(
                [
                    [
                        r['file'],
                        r['img_size'],
                        r['batch'],
                        r['peak_rss'],
                        r['live_tensor_peak'],
                        r['activations'],
                    ]
                    for r in cpu
                ],
                ['file', 'px', 'batch', 'peak RSS', 'live-tensor peak', 'activations'],
            )
        )
