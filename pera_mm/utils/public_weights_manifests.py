# Copyright (c) pera-mm contributors. All rights reserved.
"""Key-and-shape manifests of the official DINOv2 and DINOv3 ViT checkpoints.

Transcribed from the official model definitions (``dinov2/models/
vision_transformer.py`` with ``dinov2/layers``, and ``dinov3/models/
vision_transformer.py`` with ``dinov3/hub/backbones.py``), independent of the
PerAViT name map, so that a converter test can build a checkpoint with exactly
the official keys and shapes:

- DINOv2 (hub weights, ``block_chunks=0``, ``img_size=518``): ``cls_token``
  (1, 1, C), ``pos_embed`` (1, 1 + 37², C) (a cls slot even in the register
  models), ``register_tokens`` (1, R, C) for the ``_reg`` models,
  ``mask_token`` (1, C), ``patch_embed.proj`` (C, 3, 14, 14), per block
  ``norm1``, ``attn.qkv`` (3C, C) with bias, ``attn.proj``, ``ls1.gamma``,
  ``norm2``, ``mlp.fc1`` (4C, C), ``mlp.fc2``, ``ls2.gamma``; the final ``norm``.
- DINOv3 (``img_size=224``, patch 16): ``cls_token``, ``storage_tokens`` (1, 4,
  C), ``mask_token`` (1, C), ``rope_embed.periods`` (head_dim / 4,),
  ``patch_embed.proj`` (C, 3, 16, 16), per block ``norm1``, ``attn.qkv`` (3C, C)
  with ``bias`` and ``bias_mask`` (3C) (``LinearKMaskedBias``), ``attn.proj``,
  ``ls1.gamma``, ``norm2``, ``mlp.fc1`` / ``mlp.fc2`` (``Mlp``, ratio 4) or
  ``mlp.w1`` / ``mlp.w2`` (h, C) and ``mlp.w3`` (C, h) (``SwiGLUFFN``, h =
  ``int(2 / 3 * ffn_ratio * C)`` rounded up to a multiple of 8), ``ls2.gamma``;
  ``norm``; ``local_cls_norm`` for the satellite ViT-L (``SAT493M``,
  ``untie_global_and_local_cls_norm=True``).
"""

from collections import OrderedDict
from typing import Dict, Tuple

#: official DINOv2 model -> (embed_dim, depth, num_heads, register tokens)
DINOV2_MODELS = {
    'dinov2_vits14': (384, 12, 6, 0),
    'dinov2_vitb14': (768, 12, 12, 0),
    'dinov2_vitl14': (1024, 24, 16, 0),
    'dinov2_vits14_reg': (384, 12, 6, 4),
    'dinov2_vitb14_reg': (768, 12, 12, 4),
    'dinov2_vitl14_reg': (1024, 24, 16, 4),
}
#: official DINOv3 model -> (embed_dim, depth, num_heads, ffn_layer, ffn_ratio, local_cls_norm)
DINOV3_MODELS = {
    'dinov3_vits16': (384, 12, 6, 'mlp', 4.0, False),
    'dinov3_vits16plus': (384, 12, 6, 'swiglu', 6.0, False),
    'dinov3_vitb16': (768, 12, 12, 'mlp', 4.0, False),
    'dinov3_vitl16': (1024, 24, 16, 'mlp', 4.0, False),
    'dinov3_vitl16_sat493m': (1024, 24, 16, 'mlp', 4.0, True),
}


def _norm(prefix, C):
    return [(f'{prefix}.weight', (C,)), (f'{prefix}.bias', (C,))]


def _linear(prefix, out_f, in_f):
    return [(f'{prefix}.weight', (out_f, in_f)), (f'{prefix}.bias', (out_f,))]


def dinov2_manifest(name: str) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Keys and shapes of an official DINOv2 hub checkpoint (``dinov2_vits14`` ...)."""
    C, depth, _, registers = DINOV2_MODELS[name]
    grid = 518 // 14
    keys = [('cls_token', (1, 1, C)), ('pos_embed', (1, 1 + grid * grid, C))]
    if registers:
        keys.append(('register_tokens', (1, registers, C)))
    keys += [('mask_token', (1, C)), ('patch_embed.proj.weight', (C, 3, 14, 14))]
    keys.append(('patch_embed.proj.bias', (C,)))
    for i in range(depth):
        b = f'blocks.{i}'
        keys += _norm(f'{b}.norm1', C) + _linear(f'{b}.attn.qkv', 3 * C, C)
        keys += _linear(f'{b}.attn.proj', C, C) + [(f'{b}.ls1.gamma', (C,))]
        keys += _norm(f'{b}.norm2', C) + _linear(f'{b}.mlp.fc1', 4 * C, C)
        keys += _linear(f'{b}.mlp.fc2', C, 4 * C) + [(f'{b}.ls2.gamma', (C,))]
    keys += _norm('norm', C)
    return OrderedDict(keys)


def dinov3_swiglu_hidden(C: int, ffn_ratio: float, align_to: int = 8) -> int:
    """Hidden width of DINOv3's ``SwiGLUFFN``: 2/3 of ``ffn_ratio * C``, aligned up."""
    d = int(int(C * ffn_ratio) * 2 / 3)
    return d + (-d % align_to)


def dinov3_manifest(name: str) -> 'OrderedDict[str, Tuple[int, ...]]':
    """Keys and shapes of an official DINOv3 ViT checkpoint (``dinov3_vits16`` ...)."""
    C, depth, heads, ffn, ratio, sat = DINOV3_MODELS[name]
    keys = [
        ('cls_token', (1, 1, C)),
        ('storage_tokens', (1, 4, C)),
        ('mask_token', (1, C)),
        ('rope_embed.periods', (C // heads // 4,)),
        ('patch_embed.proj.weight', (C, 3, 16, 16)),
        ('patch_embed.proj.bias', (C,)),
    ]
    for i in range(depth):
        b = f'blocks.{i}'
        keys += _norm(f'{b}.norm1', C) + _linear(f'{b}.attn.qkv', 3 * C, C)
        keys += [(f'{b}.attn.qkv.bias_mask', (3 * C,))]
        keys += _linear(f'{b}.attn.proj', C, C) + [(f'{b}.ls1.gamma', (C,))]
        keys += _norm(f'{b}.norm2', C)
        if ffn == 'mlp':
            h = int(C * ratio)
            keys += _linear(f'{b}.mlp.fc1', h, C) + _linear(f'{b}.mlp.fc2', C, h)
        else:
            h = dinov3_swiglu_hidden(C, ratio)
            keys += _linear(f'{b}.mlp.w1', h, C) + _linear(f'{b}.mlp.w2', h, C)
            keys += _linear(f'{b}.mlp.w3', C, h)
        keys += [(f'{b}.ls2.gamma', (C,))]
    keys += _norm('norm', C)
    if sat:
        keys += _norm('local_cls_norm', C)
    return OrderedDict(keys)


def official_manifest(name: str) -> Dict[str, Tuple[int, ...]]:
    """The manifest of an official DINOv2 / DINOv3 model name."""
    if name in DINOV2_MODELS:
        return dinov2_manifest(name)
    if name in DINOV3_MODELS:
        return dinov3_manifest(name)
    known = sorted(DINOV2_MODELS) + sorted(DINOV3_MODELS)
    raise KeyError(f'unknown official model {name!r}; known: {", ".join(known)}')
