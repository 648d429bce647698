# Copyright (c) pera-mm contributors. All rights reserved.
"""Fold the LoRA layers of a :class:`ViTLoRAModel` state dict into plain linear weights."""

from collections import OrderedDict
from typing import Dict, Iterable, List

import torch

from ...utils.errors import PeraDataError
from .vit_lora_model import SCALING_KEY

_LORA_PARTS = ('lora_down.weight', 'lora_up.weight', SCALING_KEY)


def lora_layer_prefixes(state_dict: Dict[str, torch.Tensor]) -> List[str]:
    """Key prefixes (``'backbone.module.blocks.0.attn.qkv.'``) of the LoRA layers."""
    suffix = '.' + SCALING_KEY
    return [k[: -len(SCALING_KEY)] for k in state_dict if k.endswith(suffix)]


def _wrapper_prefix(key: str) -> str:
    """``'backbone.'`` of ``'backbone.module.blocks...'``: the part before the wrapper."""
    parts = key.split('.')
    if 'module' not in parts:
        raise PeraDataError(f'LoRA merge: {key} is not under a ViTLoRAModel (no `module.` part)')
    i = parts.index('module')
    return '.'.join(parts[:i]) + '.' if i else ''


def merge_lora_state_dict(state_dict: Dict[str, torch.Tensor], layers: Iterable[str] = None):
    """The state dict with every LoRA layer merged: ``W + (alpha / r) B A``.

    The keys become those of the model without LoRA: ``<p>.module.<x>.original_layer.weight``
    plus ``lora_down``/``lora_up``/``lora_scaling`` turn into ``<p>.<x>.weight`` (the bias
    is kept), and the wrapper's ``module.`` level is removed from every key under it, so
    the result loads into the same config with the plain ``PerAViT`` /
    ``PerAViTAdapter`` backbone.

    Args:
        state_dict (dict): a whole-model (or backbone) state dict of a ViTLoRAModel.
        layers (Iterable[str], optional): the LoRA layer prefixes to merge (e.g. a tqdm
            over :func:`lora_layer_prefixes`); default all of them.

    Returns:
        OrderedDict: the merged weights, each in its base weight's dtype (the sum is
        formed in float64).
    """
    prefixes = lora_layer_prefixes(state_dict) if layers is None else list(layers)
    if not prefixes:
        raise PeraDataError(
            f'LoRA merge: no `*.{SCALING_KEY}` key; the state dict is not of a ViTLoRAModel'
        )
    merged = dict(state_dict)
    for p in prefixes:
        base = p + 'original_layer.weight'
        if base not in merged:
            raise PeraDataError(
                f'LoRA merge: {base} is missing (a checkpoint with the LoRA weights only); '
                'the base weights are needed'
            )
        down, up = merged.pop(p + 'lora_down.weight'), merged.pop(p + 'lora_up.weight')
        scaling = merged.pop(p + SCALING_KEY)
        weight = merged.pop(base)
        delta = (up.double() @ down.double()) * scaling.double()
        merged[p + 'weight'] = (weight.double() + delta).to(weight.dtype)
        if p + 'original_layer.bias' in merged:
            merged[p + 'bias'] = merged.pop(p + 'original_layer.bias')
    wrappers = {_wrapper_prefix(p) for p in prefixes}
    out = OrderedDict()
    for key, value in merged.items():
        if any(part in key for part in _LORA_PARTS):
            raise PeraDataError(f'LoRA merge: {key} belongs to no merged LoRA layer')
        for w in wrappers:
            if key.startswith(w + 'module.'):
                key = w + key[len(w + 'module.') :]
        out[key] = value
    return out
