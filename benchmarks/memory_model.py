#!/usr/bin/env python
"""Analytic FSDP memory model of PerA pretraining (default: the slim ViT-G/16-1024 config).

Nothing big is allocated: parameter counts come from the real model built on
the meta device (``torch.device('meta')``) from the config; activation bytes
come from PerA's token counts (``disjoint_counts`` on the config's crops and
mask ratios) and a per-token formula. A small CPU calibration (one block at
the model's width, a few hundred tokens, bf16 autocast, saved-tensor hooks)
checks the formula's coefficient.

Model (bytes per GPU, N GPUs, FSDP FULL_SHARD, autocast bf16, fp32 params)
-------------------------------------------------------------------------
persistent  = (4 * (P_student + P_teacher) + 4 * P_student + 8 * P_student) / N
              fp32 params (student + EMA teacher), fp32 grads, AdamW exp_avg +
              exp_avg_sq; the teacher has no grads or optimizer state.
working set = 4 * (root + 2 * largest unit) + 4 * (root + largest unit)
              all-gathered fp32 parameters (the root unit stays gathered, one
              unit is prefetched) and unsharded grads before reduce-scatter.
              FSDP units follow ``size_based_auto_wrap_policy(min_num_params)``.
per sample (activations kept for backward, bf16 autocast, h = dim, f = MLP dim,
p = drop-path rate, 'subset' mode computes branches on (1 - p) of the rows):
  per token per block, fused attention (SDPA):
      A = (1 - p) * (20 h + 4 f + 8 h [p > 0])  bytes  [= 30.8 h for f = 4h, p = 0.3]
      (LN1 input fp32 4h, its bf16 output 2h, q/k/v 6h, SDPA output 2h (the
       proj input is a view of it), LN2 input fp32 4h + bf16 output 2h, fc1
       output 2f, GELU output 2f; LN statistics and the SDPA logsumexp are
       a few bytes; with subset drop path, 2 x 4h for the fp32 branch outputs
       that autograd keeps as ``index_add``'s source)
  non-fused attention adds (1 - p) * 6 * heads * T bytes per token (fp32
      softmax output + its bf16 copy; T = sequence length)
  without checkpointing:  sum over student paths of rows * tokens * A * blocks
  with checkpointing:     4 h bytes per token per block (the fp32 block input)
      + one block recomputed in backward (largest path, transient)
  + heads: student DINO head on 10 cls rows (K logits bf16 + fp32 log-softmax
      + fp32 teacher targets), pixel head on the l tokens, the fp32 views
  + per GPU, not per sample: autocast saves a bf16 copy of every weight a
      block uses for backward: 2 * P_student bytes UNSHARDED without
      checkpointing (FSDP frees the gathered fp32 weights, not autocast's
      copies); with checkpointing only the non-block weights (heads) keep one
  + the teacher's forward working set (no grad, one block at a time; it runs
      before the student, so it counts only if larger than the student's peak)
max batch per GPU = floor((capacity - reserve - persistent - working set) / per sample)

Student tokens at 448 px (28 x 28 = 784 patches, s/l/t = 0.2/0.2/0.6):
cls + 157 s for blocks [0, depth/2), cls + 157 s + 157 l after; teacher cls +
470 t; local 96 px crops (36 patches): student cls + 7, teacher cls + 22.

Examples::

    python benchmarks/memory_model.py
    python benchmarks/memory_model.py --gpus 8 16 32 64 --gpu-mem-gb 80 --out mem.json
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GIANT_CFG = 'configs/pera/pera_vit-giant1024-p16_fsdp-8xb8-200e_rsrsd-448px.py'
GiB = 2**30


def make_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=GIANT_CFG)
    p.add_argument('--gpus', type=int, nargs='+', default=[8, 16, 32])
    p.add_argument('--gpu-mem-gb', type=float, default=40.0,
                   help='device memory in GiB (A100 40GB)')
    p.add_argument('--reserve-gb', type=float, default=2.5,
                   help='CUDA context, NCCL buffers, cuBLAS workspace, allocator '
                        'fragmentation (GiB)')
    p.add_argument('--prototypes', type=int, default=None, help='default: from the config')
    p.add_argument('--min-num-params', type=float, default=None,
                   help='FSDP wrap threshold (default: from the config, else 1e7)')
    p.add_argument('--no-calibrate', action='store_true', help='skip the CPU calibration')
    p.add_argument('--out', default=None)
    return p


# ----------------------------------------------------------------- params
def build_meta(cfg):
    import torch
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import pera_mm  # noqa: F401
    DefaultScope.get_instance('memory-model', scope_name='mmpretrain')
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def numel(module):
    return sum(p.numel() for p in module.parameters())


def fsdp_units(model, min_num_params):
    """Parameter counts of the FSDP units ``size_based_auto_wrap_policy`` makes
    (post-order; ModuleList/ModuleDict are never wrapped; the root always is)."""
    import torch.nn as nn
    units = []

    def visit(mod, is_root=False):
        total = sum(p.numel() for p in mod.parameters())
        if total < min_num_params and not is_root:
            return total  # too small: stays in an ancestor's unit
        rem = sum(p.numel() for p in mod.parameters(recurse=False))
        for child in mod.children():
            rem += visit(child)
        if is_root or (rem >= min_num_params and not isinstance(mod, (nn.ModuleList,
                                                                      nn.ModuleDict))):
            units.append(rem)
            return 0
        return rem

    root = visit(model, is_root=True)
    return units, root


# ----------------------------------------------------------------- tokens
def token_counts(cfg, depth, mask_token_layer):
    from pera_mm.datasets.transforms.disjoint_mask_generator import disjoint_counts
    pipe = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    views, masks = pipe['PerAMultiCropViews'], pipe['DisjointMaskGenerator']
    patch = masks.get('patch_size', 16)
    ratios = tuple(masks.get('mask_ratios', (0.2, 0.2, 0.6)))
    g, loc = views['global_crop_size'], views['local_crop_size']
    Lg, Ll = (g // patch) ** 2, (loc // patch) ** 2
    gs, gl, gt = disjoint_counts(Lg, ratios)
    ls, _, lt = disjoint_counts(Ll, ratios)
    nG, nL = views['num_global_crops'], views['num_local_crops']
    early, late = mask_token_layer, depth - mask_token_layer
    return dict(
        patch=patch, ratios=ratios, global_size=g, local_size=loc, num_global=nG,
        num_local=nL, global_patches=Lg, local_patches=Ll, global_s=gs, global_l=gl,
        global_t=gt, local_s=ls, local_t=lt, depth=depth, mask_token_layer=mask_token_layer,
        # (rows per sample, tokens, blocks) of every student path
        student_paths=[('global early', nG, 1 + gs, early),
                       ('global late', nG, 1 + gs + gl, late),
                       ('local', nL, 1 + ls, depth)],
        teacher_paths=[('global', nG, 1 + gt, depth), ('local', nL, 1 + lt, depth)])


# ------------------------------------------------------------ activations
def per_token_block_bytes(h, f, p):
    """Saved bytes per token per student block (bf16 autocast, fused SDPA).

    With p > 0 ('subset' drop path) autograd also keeps the fp32 ``source`` of
    each of the two ``torch.index_add`` calls (its backward formula references
    ``source``), 2 x 4h more per computed row.
    """
    extra = 8 * h if p > 0 else 0
    return (1 - p) * (20 * h + 4 * f + extra)


def activation_model(tk, h, f, heads, p, K, hidden=2048, bottleneck=384, patch=16):
    """Bytes per sample: dict of terms for fused / non-fused, with / without checkpointing."""
    A = per_token_block_bytes(h, f, p)
    saved_fused = sum(r * t * A * b for _, r, t, b in tk['student_paths'])
    attn_extra = sum(r * t * (1 - p) * 6 * heads * t * b for _, r, t, b in tk['student_paths'])
    kept_cp = sum(r * t * 4 * h * b for _, r, t, b in tk['student_paths'])
    # one block recomputed in backward, + fp32 grads of its input and output
    recompute = max(r * t * (A + 2 * 4 * h) for _, r, t, _ in tk['student_paths'])
    recompute_nonfused = max(r * t * (A + 2 * 4 * h + (1 - p) * 6 * heads * t)
                             for _, r, t, _ in tk['student_paths'])
    n_cls = tk['num_global'] + tk['num_local']
    # 3-layer MLP head per row: bf16 input, 2 x (linear out + GELU out) bf16, bottleneck
    mlp_row = 2 * h + 2 * (2 + 2) * hidden + (2 + 4) * bottleneck
    dino = n_cls * (mlp_row + K * (2 + 4) + K * 4)  # logits bf16, log-softmax fp32, targets
    pix_out = patch * patch * 3
    pixel = tk['num_global'] * tk['global_l'] * (mlp_row + pix_out * (2 + 4 + 4))
    views = 4 * 3 * (2 * tk['num_global'] * tk['global_size'] ** 2
                     + 2 * tk['num_local'] * tk['local_size'] ** 2)
    heads_etc = dino + pixel + views
    # teacher forward: one block's working set at a time (~14 h + 4 f per token)
    teacher = max(r * t * (14 * h + 4 * f) for _, r, t, _ in tk['teacher_paths'])
    teacher += tk['num_global'] * tk['global_patches'] * h * 4  # full-grid embedding
    return dict(per_token_block_bytes=A, saved_fused=saved_fused,
                saved_nonfused=saved_fused + attn_extra, kept_checkpointed=kept_cp,
                recompute_transient=recompute, recompute_transient_nonfused=recompute_nonfused,
                dino_head=dino, pixel_head=pixel, views=views, heads_and_inputs=heads_etc,
                teacher_transient=teacher)


def per_sample_total(am, checkpoint, fused):
    if checkpoint:
        student = am['kept_checkpointed'] + (am['recompute_transient'] if fused
                                             else am['recompute_transient_nonfused'])
    else:
        student = am['saved_fused'] if fused else am['saved_nonfused']
    return max(student + am['heads_and_inputs'], am['teacher_transient'] + am['views'])


# ------------------------------------------------------------- calibration
def calibrate(h, heads, f, token_counts=(64, 256), batch=10):
    """Bytes one PerA Block saves for backward under CPU bf16 autocast, measured
    with saved-tensor hooks at two sequence lengths: the slope is the per-token
    cost (compared with the formula), the intercept the per-call cost (the bf16
    weight copies autocast saves, compared with 2 bytes x block parameters)."""
    import torch

    from pera_mm.models.utils import Block
    out = {}
    for p in (0.0, 0.3):
        sizes = []
        for T in token_counts:
            torch.manual_seed(0)
            blk = Block(h, heads, f, drop_path=p, drop_path_mode='subset').train()
            seen = {q.untyped_storage()._cdata for q in blk.parameters()}
            x = torch.randn(batch, T, h, requires_grad=True)
            total = [0]

            def pack(t, seen=seen, total=total):
                key = t.untyped_storage()._cdata
                if key not in seen:
                    seen.add(key)
                    total[0] += t.untyped_storage().nbytes()
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                    torch.autocast('cpu', dtype=torch.bfloat16):
                y = blk(x)
            del y
            sizes.append(total[0])
        slope = (sizes[1] - sizes[0]) / ((token_counts[1] - token_counts[0]) * batch)
        intercept = sizes[0] - slope * token_counts[0] * batch
        block_params = sum(q.numel() for q in blk.parameters())
        formula = per_token_block_bytes(h, f, p)
        out[f'p={p}'] = dict(measured_bytes_per_token=slope, formula_bytes_per_token=formula,
                             ratio=slope / formula, per_call_bytes=intercept,
                             bf16_weight_copy_bytes=2 * block_params)
    return out


def main(argv=None):
    args = make_parser().parse_args(argv)
    from mmengine.config import Config
    cfg = Config.fromfile(C.REPO / args.config if not Path(args.config).is_absolute()
                          else args.config)
    if args.prototypes:
        cfg.model.projector.out_channels = args.prototypes
        cfg.model.cls_loss.out_channels = args.prototypes
    K = cfg.model.projector.out_channels
    min_params = args.min_num_params
    if min_params is None:
        try:
            min_params = cfg.strategy.model_wrapper.auto_wrap_policy.min_num_params
        except (AttributeError, KeyError):
            min_params = 1e7
    model = build_meta(cfg)
    bb = model.backbone
    arch = bb.arch_settings
    h, f, heads, depth = (arch['embed_dims'], arch['feedforward_channels'], arch['num_heads'],
                          arch['num_layers'])
    p = float(cfg.model.backbone.get('drop_path_rate', 0.0))
    if cfg.model.backbone.get('drop_path_mode', 'subset') != 'subset':
        p = 0.0  # 'row' mode computes every row
    P = dict(student_backbone=numel(model.backbone), student_projector=numel(model.projector),
             predictor=numel(model.predictor) if model.predictor is not None else 0,
             mask_token=model.mask_token.numel(),
             teacher_backbone=numel(model.teacher.backbone),
             teacher_projector=numel(model.teacher.projector))
    P_s = P['student_backbone'] + P['student_projector'] + P['predictor'] + P['mask_token']
    P_t = P['teacher_backbone'] + P['teacher_projector']
    units, root = fsdp_units(model, min_params)
    non_root = sorted(units[:-1], reverse=True)
    largest = non_root[0] if non_root else 0
    working = 4 * (root + 2 * largest) + 4 * (root + largest)
    tk = token_counts(cfg, depth, bb.mask_token_layer)
    am = activation_model(tk, h, f, heads, p, K, hidden=cfg.model.projector.hidden_channels,
                          bottleneck=cfg.model.projector.bottleneck_channels, patch=tk['patch'])
    capacity = args.gpu_mem_gb * GiB
    reserve = args.reserve_gb * GiB
    cfg_batch = cfg.train_dataloader.batch_size
    rows = []
    per_gpu = []
    variants = [('ckpt, fused attn', True, True), ('no ckpt, fused attn', False, True),
                ('ckpt, non-fused', True, False), ('no ckpt, non-fused', False, False)]
    block_params = sum(numel(b) for b in bb.blocks)
    one_block = numel(bb.blocks[0])
    weight_copies = {True: 2 * (P_s - block_params + one_block), False: 2 * P_s}
    for n in args.gpus:
        persistent = dict(params_fp32=4 * (P_s + P_t) / n, grads_fp32=4 * P_s / n,
                          adamw_states=8 * P_s / n)
        pers = sum(persistent.values())
        free = capacity - reserve - pers - working
        entry = dict(gpus=n, persistent_bytes=persistent, persistent_total=pers,
                     working_set=working, free_before_weight_copies=free, variants={})
        for name, ckpt, fused in variants:
            ps = per_sample_total(am, ckpt, fused)
            left = free - weight_copies[ckpt]
            mb = max(0, math.floor(left / ps))
            entry['variants'][name] = dict(bf16_weight_copies=weight_copies[ckpt],
                                           free_for_activations=left,
                                           per_sample_bytes=ps, max_batch_per_gpu=mb,
                                           config_batch_fits=mb >= cfg_batch,
                                           global_batch=mb * n)
        per_gpu.append(entry)
    calib = None if args.no_calibrate else calibrate(h, heads, f)

    # ------------------------------------------------------------------ print
    print(f'Config: {args.config}')
    print(f'ViT: dim {h}, depth {depth}, heads {heads}, MLP {f}; drop path {p} (subset); '
          f'K = {K}; {tk["global_size"]} px globals x{tk["num_global"]}, '
          f'{tk["local_size"]} px locals x{tk["num_local"]}; mask ratios {tk["ratios"]}')
    print('\nParameters (from the model built on the meta device)')
    print(C.table([[k, v / 1e6] for k, v in P.items()] +
                  [['student (trainable)', P_s / 1e6], ['teacher (EMA)', P_t / 1e6]],
                  ['part', 'M params']))
    print(f'\nFSDP units (size_based_auto_wrap_policy, min_num_params={min_params:.0e}): '
          f'{len(units)} units, largest non-root {largest / 1e6:.1f} M, root {root / 1e6:.1f} M'
          f' -> working set {working / GiB:.2f} GiB')
    print('\nTokens per sample entering the blocks')
    trow = [[f'student {name}', r, t, b] for name, r, t, b in tk['student_paths']]
    trow += [[f'teacher {name}', r, t, b] for name, r, t, b in tk['teacher_paths']]
    print(C.table(trow, ['path', 'crops', 'tokens', 'blocks']))
    print(f"\nActivation bytes per token per block (fused, bf16): (1-p)(20h+4f+8h[p>0]) = "
          f"{am['per_token_block_bytes']:.0f} B = {am['per_token_block_bytes'] / h:.1f} h")
    print(C.table([[k, v / 2**20] for k, v in am.items() if k != 'per_token_block_bytes'],
                  ['term (per sample)', 'MiB']))
    if calib:
        print('\nCalibration: one Block, CPU bf16 autocast, saved-tensor hooks')
        print(C.table([[k, v['measured_bytes_per_token'], v['formula_bytes_per_token'],
                        v['ratio'], v['per_call_bytes'] / 2**20,
                        v['bf16_weight_copy_bytes'] / 2**20] for k, v in calib.items()],
                      ['drop path', 'measured B/token', 'formula B/token', 'ratio',
                       'per call MiB', '2 x block params MiB']))
    print(f'\nPer GPU on a {args.gpu_mem_gb:g} GiB device (reserve {args.reserve_gb:g} GiB), '
          f'FSDP over N GPUs; config batch per GPU = {cfg_batch}')
    rows = []
    for e in per_gpu:
        pb = e['persistent_bytes']
        row = [e['gpus'], pb['params_fp32'] / GiB, pb['grads_fp32'] / GiB,
               pb['adamw_states'] / GiB, e['working_set'] / GiB]
        for name, _, _ in variants:
            v = e['variants'][name]
            row += [v['per_sample_bytes'] / 2**20, v['max_batch_per_gpu']]
        rows.append(row)
    hdr = ['N', 'params GiB', 'grads GiB', 'AdamW GiB', 'gathered GiB']
    for name, _, _ in variants:
        hdr += [f'{name}: MiB/sample', 'max batch']
    print(C.table(rows, hdr))
    print(f'bf16 weight copies saved by autocast (per GPU, unsharded): '
          f'{weight_copies[False] / GiB:.2f} GiB without checkpointing, '
          f'{weight_copies[True] / GiB:.2f} GiB with it')
    print('max batch = floor((capacity - reserve - params - grads - AdamW - gathered - '
          'weight copies) / per-sample bytes)')
    payload = dict(meta=C.machine_info(), config=args.config,
                   arch=dict(dim=h, depth=depth, heads=heads, mlp=f, drop_path=p, prototypes=K),
                   params=P, student_params=P_s, teacher_params=P_t,
                   fsdp=dict(min_num_params=min_params, units=units, root=root,
                             largest_unit=largest, working_set_bytes=working),
                   tokens={k: v for k, v in tk.items()}, activations=am,
                   capacity_bytes=capacity, reserve_bytes=reserve, per_gpu=per_gpu,
                   calibration=calib,
                   formula=dict(per_token_block='(1 - p) * (20 h + 4 f + 8 h [p > 0]) bytes '
                                                '(bf16 autocast, fused SDPA, subset drop path)',
                                non_fused_extra='(1 - p) * 6 * heads * T bytes per token',
                                checkpointed='4 h bytes per token per block + one block '
                                             'recomputed'))
    if args.out:
        C.write_json(args.out, payload)
        print(f'\nJSON written to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
