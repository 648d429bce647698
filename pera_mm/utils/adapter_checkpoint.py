# Copyright (c) pera-mm contributors. All rights reserved.
"""Name map from the reference ViT-Adapter backbone layout to ``PerAViTAdapter``.

Every key family of the reference layout has an explicit rule; a key no rule
matches is reported, never passed through or dropped silently.
"""

import re
from typing import Dict, List, Mapping, Tuple

import torch

from .errors import PeraConfigError

_NORM = r'(weight|bias)'
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'
_DEFORM = r'attn\.(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)'
_EXTRACTOR_TAIL = (
    rf'((query_norm|feat_norm|ffn_norm)\.{_NORM}|{_DEFORM}'
    rf'|ffn\.(fc1|fc2|dwconv\.dwconv)\.(weight|bias))'
)

# (pattern on the reference name, replacement giving our name); full matches only.
ADAPTER_KEY_RULES: List[Tuple[str, str]] = [
    # ViT part
    (r'patch_embed\.proj\.(weight|bias)', r'patch_embed.proj.\1'),
    (r'pos_embed', r'pos_embed'),
    (r'blocks\.(\d+)\.(norm1|norm2)\.' + _NORM, r'blocks.\1.\2.\3'),
    (r'blocks\.(\d+)\.attn\.(qkv|proj)\.(weight|bias)', r'blocks.\1.attn.\2.\3'),
    (r'blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)', r'blocks.\1.mlp.\2.\3'),
    (r'blocks\.(\d+)\.gamma1', r'blocks.\1.ls1.gamma'),
    (r'blocks\.(\d+)\.gamma2', r'blocks.\1.ls2.gamma'),
    # adapter
    (r'level_embed', r'level_embed'),
    # conv weights (index 0, 3, 6) and BN entries (1, 4, 7) of the SPM stages
    (r'spm\.(stem|conv2|conv3|conv4)\.(\d+)\.' + _BN, r'spm.\1.\2.\3'),
    (r'spm\.(fc[1-4])\.(weight|bias)', r'spm.\1.\2'),
    (
        r'interactions\.(\d+)\.injector\.((query_norm|feat_norm)\.'
        + _NORM
        + '|'
        + _DEFORM
        + r'|gamma)',
        r'interactions.\1.injector.\2',
    ),
    (r'interactions\.(\d+)\.extractor\.' + _EXTRACTOR_TAIL, r'interactions.\1.extractor.\2'),
    (
        r'interactions\.(\d+)\.extra_extractors\.(\d+)\.' + _EXTRACTOR_TAIL,
        r'interactions.\1.extra_extractors.\2.\3',
    ),
    (r'up\.(weight|bias)', r'up.\1'),
    (r'norm([1-4])\.' + _BN, r'norm\1.\2'),
]
_COMPILED = [(re.compile(p), r) for p, r in ADAPTER_KEY_RULES]


def map_adapter_key(name: str):
    """Our name for one reference key, or ``None`` if no rule matches it.

    Args:
        name (str): a key of the reference ViT-Adapter backbone state dict.
    """
    for pattern, repl in _COMPILED:
        if pattern.fullmatch(name):
            return pattern.sub(repl, name)
    return None


def convert_adapter_reference(
    state_dict: Mapping[str, torch.Tensor], prefix: str = ''
) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename a reference ViT-Adapter backbone state dict to ``PerAViTAdapter`` keys.

    Args:
        state_dict (Mapping): reference keys to tensors (or any values, e.g. gradients).
        prefix (str): a prefix the reference keys carry (e.g. ``'backbone.'``); keys
            without it are reported as unmapped.

    Returns:
        tuple: the renamed dict and the sorted list of keys no rule matched.
    """
    out, unmapped = {}, []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            unmapped.append(key)
            continue
        new = map_adapter_key(key[len(prefix) :])
        if new is None:
            unmapped.append(key)
            continue
        if new in out:
            raise PeraConfigError(f'adapter checkpoint: two keys map to {new!r}')
        out[new] = value
    return out, sorted(unmapped)


def load_adapter_reference(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str = ''
) -> None:
    """Load a reference-layout state dict into ``model`` with no key left over.

    Args:
        model (nn.Module): a ``PerAViTAdapter``.
        state_dict (Mapping): the reference backbone state dict.
        prefix (str): prefix of the reference keys.

    Raises:
        PeraConfigError: a key no rule maps, or a missing/unexpected key after mapping.
    """
    mapped, unmapped = convert_adapter_reference(state_dict, prefix)
    if unmapped:
        raise PeraConfigError(
            f'adapter checkpoint: {len(unmapped)} unmapped key(s), e.g. {unmapped[:3]}'
        )
    result = model.load_state_dict(mapped, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PeraConfigError(
            f'adapter checkpoint: missing {result.missing_keys[:3]} '
            f'({len(result.missing_keys)}), unexpected '
            f'{result.unexpected_keys[:3]} ({len(result.unexpected_keys)})'
        )
