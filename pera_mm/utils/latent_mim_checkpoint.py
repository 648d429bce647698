# Copyright (c) pera-mm contributors. All rights reserved.
"""Load the LatentMIM authors' checkpoints (``encoder`` / ``target_encoder`` / ``decoder``)."""

import os.path as osp
from collections import OrderedDict
from typing import Dict, Mapping, Union

import torch
from mmengine.logging import MMLogger

from .backbone_checkpoint import load_checkpoint_dict
from .checkpoint_convert import unwrap_state_dict
from .errors import PeraDataError, PeraFileNotFoundError

#: reference prefixes -> ``LatentMIM`` prefixes
LATENT_MIM_PARTS = (
    ('target_encoder.', 'target.'),
    ('encoder.', 'backbone.'),
    ('decoder.', 'neck.'),
)
_OURS = tuple(ours for _, ours in LATENT_MIM_PARTS)
#: frozen sin-cos tables: ``LatentMIMViT`` / ``LatentMIMDecoder`` recompute them per grid
_TABLE_SUFFIX = 'pos_embed.pos_embeds'


def convert_latent_mim_checkpoint(ckpt: Mapping, source: str = '<checkpoint>') -> Dict:
    """A ``LatentMIM`` state dict from the reference's checkpoint.

    The reference saves ``{'state_dict': model.state_dict(), 'optimizer': ..., ...}``
    (``module.`` prefixes under DDP, removed here) with ``encoder.*``,
    ``target_encoder.*`` and ``decoder.*`` keys; an encoder's ``embed.proj`` is our
    ``patch_embed``. The frozen position tables are dropped (we recompute them;
    the reference's table is reproduced bit for bit). A state dict that already
    has our names passes through.

    Args:
        ckpt (Mapping): the loaded checkpoint.
        source (str): file name for error messages.

    Returns:
        dict: ``state`` (OrderedDict of ``backbone.*`` / ``target.*`` / ``neck.*``)
        and ``dropped`` (the reference keys left out).
    """
    flat = unwrap_state_dict(dict(ckpt), source)
    state, dropped = OrderedDict(), []
    for name, value in flat.items():
        if name.endswith(_TABLE_SUFFIX):
            dropped.append(name)
            continue
        for theirs, ours in LATENT_MIM_PARTS:
            if name.startswith(theirs):
                rest = name[len(theirs) :]
                if ours != 'neck.' and rest.startswith('embed.proj.'):
                    rest = 'patch_embed.' + rest[len('embed.proj.') :]
                state[ours + rest] = value
                break
        else:
            if name.startswith(_OURS):
                state[name] = value
            else:
                dropped.append(name)
    if not state:
        raise PeraDataError(
            f'{source}: not a LatentMIM checkpoint: expected encoder.* / target_encoder.* / '
            f'decoder.* (or backbone.* / target.* / neck.*) keys, found {sorted(flat)[:5]}'
        )
    return dict(state=state, dropped=dropped)


def _read(source: Union[str, Mapping]):
    if isinstance(source, Mapping):
        return source, '<checkpoint>'
    if not osp.isfile(source):
        raise PeraFileNotFoundError(f'LatentMIM checkpoint not found: {source}')
    return load_checkpoint_dict(source), source


def load_latent_mim_checkpoint(model: torch.nn.Module, source: Union[str, Mapping]) -> Dict:
    """Load a reference (or our) LatentMIM checkpoint into a ``LatentMIM`` and report keys.

    Args:
        model (nn.Module): a ``LatentMIM``.
        source (str | Mapping): a checkpoint path or the loaded dict.

    Returns:
        dict: ``missing``, ``unexpected`` and ``dropped`` key lists (also logged).
    """
    ckpt, name = _read(source)
    converted = convert_latent_mim_checkpoint(ckpt, name)
    result = model.load_state_dict(converted['state'], strict=False)
    report = dict(
        missing=list(result.missing_keys),
        unexpected=list(result.unexpected_keys),
        dropped=converted['dropped'],
    )
    MMLogger.get_current_instance().info(
        f'LatentMIM checkpoint {name}: {len(converted["state"])} tensors loaded; missing keys '
        f'{report["missing"] or "none"}; unexpected keys {report["unexpected"] or "none"}; '
        f'left out (recomputed tables, other entries) {len(report["dropped"])}'
    )
    return report


def load_latent_mim_encoder(vit: torch.nn.Module, source: Union[str, Mapping], part='target'):
    """Load one encoder of a LatentMIM checkpoint into a ``LatentMIMViT``.

    Args:
        vit (nn.Module): the ``LatentMIMViT``.
        source (str | Mapping): checkpoint path or loaded dict (reference or ours).
        part (str): 'target' (the EMA encoder) or 'online'.

    Returns:
        dict: ``unexpected`` keys (e.g. the head for a head-less encoder).

    Raises:
        PeraDataError: the checkpoint lacks encoder weights the model needs.
    """
    if part not in ('target', 'online'):
        raise PeraDataError(f"LatentMIMViT: part must be 'target' or 'online', got {part!r}")
    ckpt, name = _read(source)
    prefix = 'target.' if part == 'target' else 'backbone.'
    state = convert_latent_mim_checkpoint(ckpt, name)['state']
    sub = OrderedDict((k[len(prefix) :], v) for k, v in state.items() if k.startswith(prefix))
    result = vit.load_state_dict(sub, strict=False)
    if result.missing_keys:
        raise PeraDataError(
            f'{name}: the {part} encoder lacks {len(result.missing_keys)} weight(s) of the '
            f'model, e.g. {result.missing_keys[:3]}'
        )
    MMLogger.get_current_instance().info(
        f'LatentMIMViT: {part} encoder from {name}: {len(sub)} tensors; missing keys none; '
        f'unexpected keys {list(result.unexpected_keys) or "none"}'
    )
    return dict(unexpected=list(result.unexpected_keys))
