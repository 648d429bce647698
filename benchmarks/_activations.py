# Copyright (c) pera-mm contributors. All rights reserved.
"""Activation memory of PerA-family training: token paths, per-token block formulas,
and the CPU measurements (saved-tensor hooks) that check them.

Used by ``memory_model.py``. Bytes are what autograd saves for backward; the
formulas are per token per block, for bf16 autocast (the GPU setting) and fp32.
"""

import contextlib
import copy
from unittest import mock

import numpy as np
import torch
from mmpretrain.registry import MODELS, TRANSFORMS

from pera_mm.datasets import disjoint_counts
from pera_mm.models.backbones.pera_vit import PerAViT
from pera_mm.models.utils import Block
from pera_mm.testing import synthetic_batch


# ----------------------------------------------------------------- tokens
def token_counts(cfg, depth, mask_token_layer):
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
        patch=patch,
        ratios=ratios,
        global_size=g,
        local_size=loc,
        num_global=nG,
        num_local=nL,
        global_patches=Lg,
        local_patches=Ll,
        global_s=gs,
        global_l=gl,
        global_t=gt,
        local_s=ls,
        local_t=lt,
        depth=depth,
        mask_token_layer=mask_token_layer,
        # (rows per sample, tokens, blocks) of every student path
        student_paths=[
            ('global early', nG, 1 + gs, early),
            ('global late', nG, 1 + gs + gl, late),
            ('local', nL, 1 + ls, depth),
        ],
        teacher_paths=[('global', nG, 1 + gt, depth), ('local', nL, 1 + lt, depth)],
    )


def expected_block_mask_fraction(cfg):
    """Mean masked fraction of a global crop under the config's ``mode='block'`` masks:
    ``block_mask_prob`` x the middle of ``block_mask_ratio`` (generator defaults if unset)."""
    import inspect

    from pera_mm.datasets.transforms.disjoint_mask_generator import DisjointMaskGenerator

    defaults = {
        k: v.default
        for k, v in inspect.signature(DisjointMaskGenerator.__init__).parameters.items()
    }
    masks = next(
        t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'DisjointMaskGenerator'
    )
    prob = masks.get('block_mask_prob', defaults['block_mask_prob'])
    lo, hi = masks.get('block_mask_ratio', defaults['block_mask_ratio'])
    return prob * (lo + hi) / 2


def baseline_token_counts(cfg, depth):
    """Token paths of the DINOv2-style baseline: the student sees every patch of every
    crop (masked global patches as mask tokens from block 0), the teacher the full
    global crops and no local crops."""
    pipe = {t['type']: t for t in cfg.train_dataloader.dataset.pipeline}
    views, masks = pipe['PerAMultiCropViews'], pipe['DisjointMaskGenerator']
    patch = masks.get('patch_size', 16)
    g, loc = views['global_crop_size'], views['local_crop_size']
    Lg, Ll = (g // patch) ** 2, (loc // patch) ** 2
    nG, nL = views['num_global_crops'], views['num_local_crops']
    return dict(
        patch=patch,
        global_size=g,
        local_size=loc,
        num_global=nG,
        num_local=nL,
        global_patches=Lg,
        local_patches=Ll,
        depth=depth,
        expected_masked_per_global=expected_block_mask_fraction(cfg) * Lg,
        student_paths=[('global', nG, 1 + Lg, depth), ('local', nL, 1 + Ll, depth)],
        teacher_paths=[('global', nG, 1 + Lg, depth)],
    )


# ------------------------------------------------------------ activations
def per_token_block_bytes(h, f, p, precision='bf16'):
    """Saved bytes per token per student block (fused SDPA).

    bf16 autocast: (1 - p)(20 h + 4 f); fp32: (1 - p)(32 h + 8 f) (every saved
    tensor at 4 bytes, and the LayerNorm outputs saved instead of their bf16
    copies). With p > 0 ('subset' drop path) autograd also keeps the fp32
    ``source`` of each of the two ``torch.index_add`` calls, 2 x 4h more per
    computed row.
    """
    extra = 8 * h if p > 0 else 0
    per_row = 20 * h + 4 * f if precision == 'bf16' else 32 * h + 8 * f
    return (1 - p) * (per_row + extra)


# Bytes per attention-matrix element that a non-fused (materialised) attention
# saves for backward: fp32 keeps the softmax output; CUDA bf16 autocast runs
# softmax in fp32 and casts its output to bf16 for the product with v (both are
# saved: 4 + 2); CPU bf16 autocast keeps softmax in bf16 (2; what the CPU check sees).
ATTN_ELEMENT_BYTES = dict(fp32=4, bf16=6, bf16_cpu=2)
# Bytes per token per teacher block alive at once in a no-grad forward (bf16:
# block input fp32 4h + its LayerNorm/qkv/attention/MLP working set ~10h + 4f);
# fp32 doubles the bf16 activations
TEACHER_TRANSIENT = dict(bf16=lambda h, f: 14 * h + 4 * f, fp32=lambda h, f: 28 * h + 8 * f)


def block_terms(tk, h, f, heads, p):
    """Per-sample bytes of the student blocks (saved / checkpointed / transient)."""
    A = per_token_block_bytes(h, f, p)
    paths = tk['student_paths']
    return dict(
        per_token_block_bytes=A,
        saved_fused=sum(r * t * A * b for _, r, t, b in paths),
        saved_attn_extra_nonfused=sum(
            r * t * (1 - p) * ATTN_ELEMENT_BYTES['bf16'] * heads * t * b for _, r, t, b in paths
        ),
        kept_checkpointed=sum(r * t * 4 * h * b for _, r, t, b in paths),
        recompute_transient=max(r * t * (A + 2 * 4 * h) for _, r, t, _ in paths),
        recompute_transient_nonfused=max(
            r * t * (A + 2 * 4 * h + (1 - p) * ATTN_ELEMENT_BYTES['bf16'] * heads * t)
            for _, r, t, _ in paths
        ),
        teacher_transient=max(r * t * (14 * h + 4 * f) for _, r, t, _ in tk['teacher_paths']),
    )


def student_blocks_saved(tk, h, f, p, depth, checkpoint, precision='bf16'):
    """Per-sample saved bytes of the student blocks for a model of ``depth``."""
    early = depth // 2
    paths = [
        (r, t, early if 'early' in n else depth - early if 'late' in n else depth)
        for n, r, t, _ in tk['student_paths']
    ]
    per_tok = 4 * h if checkpoint else per_token_block_bytes(h, f, p, precision)
    return sum(r * t * per_tok * b for r, t, b in paths)


# ------------------------------------------------------- CPU measurements
def saved_for_backward_bytes(module, run, autocast=True):
    """Bytes of the distinct storages autograd saves while ``run()`` executes (under
    CPU bf16 autocast unless ``autocast`` is False), excluding ``module``'s parameters."""
    seen = {q.untyped_storage()._cdata for q in module.parameters()}
    total = [0]

    def pack(t):
        key = t.untyped_storage()._cdata
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    amp = torch.autocast('cpu', dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), amp:
        out = run()
    del out
    return total[0]


def _measure_saved(cfg, depth, batch, with_cp, seed=0, autocast=True):
    """Bytes saved for backward by the config's model at ``depth`` (CPU, bf16 autocast
    or fp32, drop path 0), excluding parameters; also the student block parameter count."""
    cfg = copy.deepcopy(cfg)
    arch = cfg.model.backbone.arch
    if not isinstance(arch, dict):
        arch = PerAViT.arch_zoo[arch]
    cfg.model.backbone.update(
        arch=dict(arch, num_layers=depth), with_cp=with_cp, drop_path_rate=0.0
    )
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = MODELS.build(cfg.model).train()
    transforms = [TRANSFORMS.build(t) for t in cfg.train_dataloader.dataset.pipeline[1:]]
    g = next(t for t in cfg.train_dataloader.dataset.pipeline if t['type'] == 'PerAMultiCropViews')[
        'global_crop_size'
    ]
    # the pixels do not change what is saved; any source image >= the crop will do
    data = model.data_preprocessor(synthetic_batch(transforms, batch, g, seed), True)
    saved = saved_for_backward_bytes(model, lambda: model(**data, mode='loss'), autocast)
    block_params = sum(q.numel() for q in model.backbone.blocks.parameters())
    return saved, block_params


def measure_nonblock(cfg, tk, h, f, batches=(2, 4), precision='bf16'):
    """Non-block saved bytes per sample and per step, from depth-2 runs at two batch
    sizes (KoLeo needs >= 2 samples), under bf16 autocast or in fp32."""
    b1, b2 = batches
    amp = precision == 'bf16'
    s1, pb = _measure_saved(cfg, 2, b1, False, autocast=amp)
    s2, _ = _measure_saved(cfg, 2, b2, False, autocast=amp)
    blocks_ps = student_blocks_saved(tk, h, f, 0.0, 2, False, precision)
    per_sample = (s2 - s1) / (b2 - b1) - blocks_ps
    # minus the blocks' bf16 weight copies (2 bytes x block params, per step; none in fp32)
    per_step = s1 - b1 * (blocks_ps + per_sample) - (2 * pb if amp else 0)
    return dict(
        per_sample=per_sample, per_step=per_step, batches=list(batches), measured_depth2=[s1, s2]
    )


def validate(
    cfg, tk, h, f, nonblock, depth=4, batch=3, precision='bf16', checkpoints=(False, True)
):
    """Predicted vs measured saved bytes of a depth-4 model, with and without checkpointing."""
    out = {}
    amp = precision == 'bf16'
    for ckpt in checkpoints:
        measured, pb = _measure_saved(cfg, depth, batch, ckpt, autocast=amp)
        predicted = (
            nonblock['per_step']
            + batch * nonblock['per_sample']
            + batch * student_blocks_saved(tk, h, f, 0.0, depth, ckpt, precision)
            + (0 if ckpt or not amp else 2 * pb)
        )
        out['checkpoint' if ckpt else 'no_checkpoint'] = dict(
            depth=depth,
            batch=batch,
            measured=measured,
            predicted=predicted,
            ratio=measured / predicted,
        )
    return out


def calibrate_block(h, heads, f, token_counts=(64, 256), batch=10, precision='bf16'):
    """Bytes one PerA Block saves for backward (CPU bf16 autocast or fp32), measured
    with saved-tensor hooks at two sequence lengths: the slope is the per-token
    cost (compared with the formula), the intercept the per-call cost (the bf16
    weight copies autocast saves, compared with 2 bytes x block parameters; 0 in fp32)."""
    out = {}
    for p in (0.0, 0.3):
        sizes = []
        for T in token_counts:
            torch.manual_seed(0)
            blk = Block(h, heads, f, drop_path=p, drop_path_mode='subset').train()
            x = torch.randn(batch, T, h, requires_grad=True)
            sizes.append(
                saved_for_backward_bytes(
                    blk, lambda blk=blk, x=x: blk(x), autocast=precision == 'bf16'
                )
            )
        slope = (sizes[1] - sizes[0]) / ((token_counts[1] - token_counts[0]) * batch)
        intercept = sizes[0] - slope * token_counts[0] * batch
        block_params = sum(q.numel() for q in blk.parameters())
        formula = per_token_block_bytes(h, f, p, precision)
        out[f'p={p}'] = dict(
            measured_bytes_per_token=slope,
            formula_bytes_per_token=formula,
            ratio=slope / formula,
            per_call_bytes=intercept,
            bf16_weight_copy_bytes=2 * block_params if precision == 'bf16' else 0,
        )
    return out


def textbook_attention(q, k, v):
    """softmax(q k^T / sqrt(d)) v with the attention matrix materialised."""
    return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1) @ v


def calibrate_attention(h, heads, f, tokens=96, batch=4, precision='bf16'):
    """Extra bytes a block saves when its attention is materialised instead of fused,
    per attention-matrix element (batch x heads x tokens^2), on CPU."""
    torch.manual_seed(0)
    blk = Block(h, heads, f).train()
    x = torch.randn(batch, tokens, h, requires_grad=True)
    amp = precision == 'bf16'
    fused = saved_for_backward_bytes(blk, lambda: blk(x), amp)
    with mock.patch('torch.nn.functional.scaled_dot_product_attention', textbook_attention):
        plain = saved_for_backward_bytes(blk, lambda: blk(x), amp)
    per_element = (plain - fused) / (batch * heads * tokens**2)
    formula = ATTN_ELEMENT_BYTES['fp32' if precision == 'fp32' else 'bf16_cpu']
    return dict(
        precision=precision,
        tokens=tokens,
        measured_bytes_per_element=per_element,
        formula_bytes_per_element=formula,
        ratio=per_element / formula,
    )
