# Copyright (c) pera-mm contributors. All rights reserved.
"""Public foundation weights (timm, DINOv2, DINOv3, MMPretrain ViTs) as ``PerAViT`` weights.

A conversion has three steps, each pure (dict in, dict out):

1. :func:`rename_public_keys`: the source layout's key rules give PerAViT names;
   keys a rule discards (pretraining-only or fixed tensors such as DINOv3's
   ``rope_embed.periods``, ``qkv.bias_mask``, ``local_cls_norm``, the mask
   token, classifier heads) are reported as *dropped by rule* with the reason;
   keys no rule knows are *unexpected*.
2. :func:`infer_pera_vit_cfg`: the ``PerAViT`` arguments the weights need
   (width, depth, patch size, registers, position layout and resize
   convention, RoPE, LayerScale, qkv bias form, SwiGLU, LayerNorm eps).
3. :func:`match_to_model`: every key of the target ``PerAViT`` must be there
   (zero missing keys) with its shape; position tables are resized to the
   target grid by the source's convention and the patch embedding to the target
   patch size by FlexiViT's pseudo-inverse resize (:func:`resize_patch_embed`),
   both listed as *reshaped*. Anything else fails with one line naming the
   first mismatching key.

Layouts (``KNOWN_LAYOUTS``): ``'timm'`` (``VisionTransformer``: ViT, DINOv2 and
its register models; ``Eva``: the DINOv3 ports), ``'dinov2'`` and ``'dinov3'``
(the official repositories' checkpoints), ``'mmpretrain'`` (MMPretrain's
``VisionTransformer``, with or without a ``backbone.`` prefix).
"""

import math
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .checkpoint_convert import (
    CheckpointConvertError,
    flatten_block_chunks,
    load_weights_file,
    mmpretrain_to_pera_vit_key,
    unwrap_state_dict,
)

KNOWN_LAYOUTS = ('timm', 'dinov2', 'dinov3', 'mmpretrain')
_BLOCK = re.compile(r'^blocks\.(\d+)\.(.+)$')
#: head width of every listed public ViT (the heads cannot be read from shapes)
DEFAULT_HEAD_DIM = 64


class PublicWeightsError(CheckpointConvertError):
    """Public weights that do not convert to the requested ``PerAViT``."""


def check_layout(layout: str) -> str:
    """``layout`` if known, else a one-line error listing the known ones."""
    if layout not in KNOWN_LAYOUTS:
        raise PublicWeightsError(
            f'unknown layout {layout!r}; known layouts: {", ".join(KNOWN_LAYOUTS)}'
        )
    return layout


def read_weights(path: str) -> 'OrderedDict':
    """Flat weights of a ``.pth`` (``torch.load(mmap=True)``) or ``.safetensors`` file."""
    if not osp.isfile(path):
        raise PublicWeightsError(f'{path}: no such file')
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return OrderedDict(load_file(path, device='cpu'))
        except (SafetensorError, OSError, ValueError) as e:
            raise PublicWeightsError(f'{path}: cannot be read as safetensors ({e})') from None
    return unwrap_state_dict(load_weights_file(path, mmap=True), path)


# ----------------------------------------------------------------- key rules
def _strip_backbone_prefix(state_dict, dropped):
    """Keep ``backbone.*`` of a full model checkpoint (the rest is dropped by rule)."""
    if not any(k.startswith('backbone.') for k in state_dict):
        return state_dict
    out = OrderedDict()
    for k, v in state_dict.items():
        if k.startswith('backbone.'):
            out[k[len('backbone.') :]] = v
        else:
            dropped[k] = 'not part of the backbone'
    return out


def _split_qkv_bias(key, value, out, dropped):
    """A fused (3C) qkv bias whose k part is masked -> q_bias, v_bias."""
    q, _, v = value.chunk(3, dim=0)
    base = key[: -len('qkv.bias')]
    out[base + 'q_bias'], out[base + 'v_bias'] = q, v
    dropped[key + '[k]'] = 'k bias (masked to zero by qkv.bias_mask)'


def _rename_timm(key):
    """timm VisionTransformer / Eva key -> PerAViT key (None: no rule)."""
    if key in ('cls_token', 'pos_embed'):
        return key
    if key == 'reg_token':
        return 'register_tokens'
    if re.match(r'^(patch_embed\.proj|norm)\.(weight|bias)$', key):
        return key
    m = _BLOCK.match(key)
    if not m:
        return None
    rest = {'gamma_1': 'ls1.gamma', 'gamma_2': 'ls2.gamma'}.get(m.group(2), m.group(2))
    ok = re.match(
        r'^(norm[12]\.(weight|bias)|attn\.qkv\.(weight|bias)|attn\.[qv]_bias'
        r'|attn\.proj\.(weight|bias)|ls[12]\.gamma'
        r'|mlp\.(fc1|fc2|fc1_g|fc1_x)\.(weight|bias))$',
        rest,
    )
    return f'blocks.{m.group(1)}.{rest}' if ok else None


_TIMM_DROPS = (
    (re.compile(r'^head\.'), 'classifier head'),
    (re.compile(r'^fc_norm\.'), 'pooled-feature norm of the classifier'),
    (re.compile(r'^attn_pool\.'), 'attention-pool head'),
    (re.compile(r'(^|\.)rope\.'), 'fixed RoPE buffer (recomputed)'),
)

_OFFICIAL_DROPS = (
    (re.compile(r'^mask_token$'), 'pretraining mask token (PerA learns its own)'),
    (re.compile(r'^rope_embed\.periods$'), 'fixed RoPE periods (recomputed from the base)'),
    (re.compile(r'\.bias_mask$'), 'fixed k-bias mask'),
    (re.compile(r'^local_cls_norm\.'), "norm of local crops' cls token, training only"),
    (re.compile(r'^head\.'), 'classifier head'),
    (re.compile(r'^dino_head\.|^ibot_head\.'), 'pretraining head'),
)


def _rename_official(key, value, out, dropped, layout):
    for pattern, reason in _OFFICIAL_DROPS:
        if pattern.search(key):
            dropped[key] = reason
            return True
    if key in ('cls_token', 'pos_embed', 'register_tokens'):
        out[key] = value
        return True
    if key == 'storage_tokens':
        out['register_tokens'] = value
        return True
    if re.match(r'^(patch_embed\.proj|norm)\.(weight|bias)$', key):
        out[key] = value
        return True
    m = _BLOCK.match(key)
    if not m:
        return False
    i, rest = m.groups()
    pre = f'blocks.{i}.'
    if rest == 'attn.qkv.bias' and layout == 'dinov3':
        _split_qkv_bias(pre + rest, value, out, dropped)
        return True
    if rest.startswith('mlp.w12.'):  # DINOv2's fused SwiGLU (ViT-g): [gate; value]
        gate, val = value.chunk(2, dim=0)
        param = rest.rsplit('.', 1)[1]
        out[f'{pre}mlp.fc1_g.{param}'], out[f'{pre}mlp.fc1_x.{param}'] = gate, val
        dropped[pre + rest] = 'split into mlp.fc1_g / mlp.fc1_x'
        return True
    rest = re.sub(r'^mlp\.w1\.', 'mlp.fc1_g.', rest)
    rest = re.sub(r'^mlp\.w2\.', 'mlp.fc1_x.', rest)
    rest = re.sub(r'^mlp\.w3\.', 'mlp.fc2.', rest)
    if re.match(
        r'^(norm[12]\.(weight|bias)|attn\.(qkv|proj)\.(weight|bias)|ls[12]\.gamma'
        r'|mlp\.(fc1|fc2|fc1_g|fc1_x)\.(weight|bias))$',
        rest,
    ):
        out[pre + rest] = value
        return True
    return False


def rename_public_keys(
    state_dict: Dict[str, torch.Tensor], layout: str, source: str = '<checkpoint>'
) -> Tuple['OrderedDict', Dict[str, str], list]:
    """Source keys -> PerAViT keys by the rules of ``layout``.

    Returns:
        tuple: renamed weights, ``{source key: reason}`` of the keys dropped by
        rule, and the unexpected source keys (no rule knows them).
    """
    check_layout(layout)
    dropped: Dict[str, str] = OrderedDict()
    unexpected = []
    out = OrderedDict()
    state_dict = _strip_backbone_prefix(OrderedDict(state_dict), dropped)
    if layout in ('dinov2', 'dinov3'):
        state_dict = flatten_block_chunks(state_dict, source)
    for key, value in state_dict.items():
        if layout == 'timm':
            reason = next((r for p, r in _TIMM_DROPS if p.search(key)), None)
            new = None if reason else _rename_timm(key)
            if reason:
                dropped[key] = reason
            elif new:
                out[new] = value
            else:
                unexpected.append(key)
        elif layout == 'mmpretrain':
            if key == 'ln2.weight' or key == 'ln2.bias':
                dropped[key] = "norm of MMPretrain's avg_featmap output"
                continue
            new = mmpretrain_to_pera_vit_key(key)
            if new is None:
                unexpected.append(key)
            else:
                out[new] = value
        elif not _rename_official(key, value, out, dropped, layout):
            unexpected.append(key)
    return out, dropped, unexpected


# ----------------------------------------------------------- architecture
def _square_side(n):
    side = math.isqrt(n)
    return side if side * side == n else None


def infer_pera_vit_cfg(
    weights: Dict[str, torch.Tensor],
    layout: str,
    source: str = '<checkpoint>',
    periods: Optional[torch.Tensor] = None,
) -> dict:
    """``PerAViT`` keyword arguments for PerAViT-named ``weights`` of ``layout``.

    ``num_heads`` is width / 64 (true of every listed model); the position
    resize convention and LayerNorm eps follow the source (DINOv2: +0.1 offset,
    timm: antialiased bicubic, MMPretrain: plain bicubic; DINOv3 and its timm
    port: eps 1e-5, RoPE base 100 — or the base read from ``periods`` — and
    DINOv3's train-time coordinate rescale of 2).
    """
    check_layout(layout)
    if 'patch_embed.proj.weight' not in weights:
        raise PublicWeightsError(
            f'{source}: no patch embedding (patch_embed.proj.weight) in the {layout} layout'
        )
    proj = weights['patch_embed.proj.weight']
    C, in_ch, p = int(proj.shape[0]), int(proj.shape[1]), int(proj.shape[-1])
    depth = len({int(m.group(1)) for m in map(_BLOCK.match, weights) if m})
    swiglu = 'blocks.0.mlp.fc1_g.weight' in weights
    fc1 = weights.get('blocks.0.mlp.fc1_g.weight' if swiglu else 'blocks.0.mlp.fc1.weight')
    if 'blocks.0.attn.q_bias' in weights:
        qkv_bias = 'qv'
    else:
        qkv_bias = 'blocks.0.attn.qkv.bias' in weights
    dinov3 = layout == 'dinov3' or (layout == 'timm' and 'pos_embed' not in weights)
    registers = weights.get('register_tokens')
    cfg = dict(
        arch=dict(
            embed_dims=C,
            num_layers=depth,
            num_heads=max(C // DEFAULT_HEAD_DIM, 1),
            feedforward_channels=int(fc1.shape[0]) if fc1 is not None else 4 * C,
        ),
        patch_size=p,
        in_channels=in_ch,
        qkv_bias=qkv_bias,
        layer_scale_init_value=1e-5 if 'blocks.0.ls1.gamma' in weights else 0.0,
        num_register_tokens=int(registers.shape[1]) if registers is not None else 0,
        norm_eps=1e-5 if dinov3 else 1e-6,
        mlp_type='swiglu' if swiglu else 'mlp',
    )
    pos = weights.get('pos_embed')
    if pos is None:
        base = 100.0
        if periods is not None and periods.numel() > 1:
            head_dim = 4 * periods.numel()
            base = float(periods.double()[1] ** (head_dim / 4))
        cfg.update(
            pos_embed_layout='none', img_size=224, rope=dict(base=round(base, 3), rescale_coords=2)
        )
        return cfg
    n = int(pos.shape[1])
    if _square_side(n - 1):
        layout_name, side = 'cls_slot', _square_side(n - 1)
    elif _square_side(n):
        layout_name, side = 'patch_only', _square_side(n)
    else:
        raise PublicWeightsError(
            f'{source}: pos_embed has {n} entries: neither a square grid nor one with a cls slot'
        )
    resize = dict(
        timm=dict(pos_resize='antialias'),
        dinov2=dict(pos_resize='offset', interpolate_offset=0.1),
        mmpretrain=dict(pos_resize='offset', interpolate_offset=0.0),
    )[layout]
    cfg.update(pos_embed_layout=layout_name, img_size=side * p, **resize)
    return cfg


# -------------------------------------------------------------- reshaping
def _resize_matrix(src: int, dst: int) -> torch.Tensor:
    """(dst², src²) matrix of the bilinear resize of a src x src patch to dst x dst."""
    basis = torch.eye(src * src, dtype=torch.float64).reshape(src * src, 1, src, src)
    out = F.interpolate(basis, size=(dst, dst), mode='bilinear', align_corners=False)
    return out.reshape(src * src, dst * dst).T


def resize_patch_embed(weight: torch.Tensor, new_size: int) -> torch.Tensor:
    """FlexiViT's pseudo-inverse resize of a patch-embedding kernel (C, in, p, p).

    With ``B`` the bilinear resize of a p x p patch to q x q, the new kernel is
    ``w' = pinv(B^T) w``. Upsampling (q > p, e.g. 14 -> 16): ``B^T w' = w``, so
    a patch and its bilinear resize give the same token, ``<B x, w'> = <x, w>``.
    Downsampling (16 -> 14): the least-squares solution of ``B^T w' = w``.
    """
    p = int(weight.shape[-1])
    if weight.shape[-2] != p:
        raise PublicWeightsError(f'patch embedding kernel {tuple(weight.shape)} is not square')
    if p == new_size:
        return weight
    B = _resize_matrix(p, new_size)
    pinv = torch.linalg.pinv(B.T)
    flat = weight.double().reshape(-1, p * p)
    return (flat @ pinv.T).reshape(*weight.shape[:2], new_size, new_size).to(weight.dtype)


def match_to_model(
    weights: Dict[str, torch.Tensor],
    model: torch.nn.Module,
    source: str = '<checkpoint>',
    progress: bool = False,
) -> Tuple['OrderedDict', Dict[str, str], list]:
    """Weights for every key of ``model`` (shapes resized where a rule allows).

    Returns:
        tuple: the state dict (model key order), ``{key: how}`` of the
        reshaped tensors, and the renamed keys ``model`` has no place for.
    Raises:
        PublicWeightsError: a missing key or a shape no rule fixes; the first
        one in the model's key order is named.
    """
    own = model.state_dict()
    out, reshaped = OrderedDict(), OrderedDict()
    items = own.items()
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(own), desc='convert', unit='tensor')
    for key, target in items:
        if key not in weights:
            raise PublicWeightsError(
                f'{source}: {key} {tuple(target.shape)} of the target PerAViT is missing '
                f'in the checkpoint (first of {sum(k not in weights for k in own)} missing)'
            )
        value = weights[key]
        if value.shape != target.shape:
            value = _reshape(key, value, target, model, source)
            reshaped[key] = f'{tuple(weights[key].shape)} -> {tuple(value.shape)}'
        out[key] = value
    unexpected = [k for k in weights if k not in own]
    return out, reshaped, unexpected


def _reshape(key, value, target, model, source):
    from ..models.utils import resize_pos_embed

    if key == 'patch_embed.proj.weight' and value.shape[:2] == target.shape[:2]:
        return resize_patch_embed(value, int(target.shape[-1]))
    if key == 'pos_embed' and value.shape[-1] == target.shape[-1]:
        slots = 1 if getattr(model, 'pos_embed_layout', 'cls_slot') == 'cls_slot' else 0
        src_side = _square_side(value.shape[1] - slots)
        if src_side:
            antialias = getattr(model, 'pos_resize', 'offset') == 'antialias'
            return resize_pos_embed(
                value,
                (src_side, src_side),
                tuple(model.grid_size),
                num_extra_tokens=slots,
                antialias=antialias,
            )
    raise PublicWeightsError(
        f'{source}: {key} has shape {tuple(value.shape)}, the target PerAViT expects '
        f'{tuple(target.shape)} (another width, depth or architecture?)'
    )


# ------------------------------------------------------------------ driver
def convert_public_weights(
    state_dict: Dict[str, torch.Tensor],
    layout: str,
    cfg_overrides: Optional[dict] = None,
    model: Optional[torch.nn.Module] = None,
    source: str = '<checkpoint>',
    strict: bool = True,
    progress: bool = False,
) -> Tuple['OrderedDict', dict]:
    """Convert public weights to a ``PerAViT`` state dict with a key report.

    Args:
        state_dict (dict): the source weights (flat).
        layout (str): one of ``KNOWN_LAYOUTS``.
        cfg_overrides (dict, optional): ``PerAViT`` arguments replacing the
            inferred ones (e.g. ``img_size``, ``patch_size`` to resize to,
            ``num_heads`` inside ``arch``).
        model (nn.Module, optional): the target ``PerAViT``; default: built on
            the meta device from the inferred config.
        source (str): name of the source in messages.
        strict (bool): unexpected source keys are an error (default) or only
            reported.
        progress (bool): a tqdm bar over the target keys.

    Returns:
        tuple: the PerAViT state dict and the report ``dict(layout, cfg,
        loaded, missing, unexpected, reshaped, dropped)``.
    """
    from ..models.backbones.pera_vit import PerAViT

    renamed, dropped, unexpected = rename_public_keys(state_dict, layout, source)
    periods = state_dict.get('rope_embed.periods')
    cfg = infer_pera_vit_cfg(renamed, layout, source, periods=periods)
    for k, v in (cfg_overrides or {}).items():
        cfg[k] = dict(cfg[k], **v) if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    if model is None:
        with torch.device('meta'):
            model = PerAViT(**cfg)
    out, reshaped, extra = match_to_model(renamed, model, source, progress)
    unexpected = unexpected + extra
    if unexpected and strict:
        raise PublicWeightsError(
            f'{source}: {unexpected[0]} is unexpected in the {layout} layout for the target '
            f'PerAViT ({len(unexpected)} unexpected key(s))'
        )
    report = dict(
        layout=layout,
        cfg=cfg,
        loaded=list(out),
        missing=[],
        unexpected=unexpected,
        reshaped=dict(reshaped),
        dropped=dict(dropped),
    )
    return out, report


def load_public_weights(model: torch.nn.Module, path: str, layout: str, strict: bool = True):
    """Convert the public checkpoint ``path`` for ``model`` and load it; returns the report."""
    weights = read_weights(path)
    out, report = convert_public_weights(weights, layout, model=model, source=path, strict=strict)
    model.load_state_dict(out, strict=True)
    return report
