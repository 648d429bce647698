# Copyright (c) pera-mm contributors. All rights reserved.
"""Load the I-JEPA authors' checkpoints (``encoder`` / ``predictor`` / ``target_encoder``)."""

import os.path as osp
from collections import OrderedDict
from typing import Dict, Mapping, Union

import torch
from mmengine.logging import MMLogger

from .backbone_checkpoint import load_checkpoint_dict
from .errors import PeraDataError, PeraFileNotFoundError

#: the reference's three state dicts and where each goes in ``IJEPA``
IJEPA_PARTS = {'encoder': 'backbone.', 'predictor': 'neck.', 'target_encoder': 'target_encoder.'}

#: reference predictor names -> ``IJEPAPredictor`` names (prefix renames, first match)
_PREDICTOR_RENAMES = (
    ('predictor_blocks.', 'blocks.'),
    ('predictor_embed.', 'embed.'),
    ('predictor_norm.', 'norm.'),
    ('predictor_proj.', 'proj.'),
    ('predictor_pos_embed', 'pos_embed'),
    ('mask_token', 'mask_token'),
)


def _strip_module(name: str) -> str:
    return name[len('module.') :] if name.startswith('module.') else name


def ijepa_predictor_name(name: str) -> str:
    """A reference predictor parameter name (``predictor_blocks.0...``) in ``IJEPAPredictor``."""
    for old, new in _PREDICTOR_RENAMES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def convert_ijepa_checkpoint(ckpt: Mapping) -> 'OrderedDict[str, torch.Tensor]':
    """An ``IJEPA`` state dict from the reference's checkpoint dict.

    The reference saves ``encoder``, ``predictor`` and ``target_encoder`` state dicts
    of DDP-wrapped modules (``module.`` prefixes, stripped here); any of them may be
    missing (e.g. a target-encoder-only export). Encoder names are ours already; the
    predictor's ``predictor_*`` names lose the prefix.

    Args:
        ckpt (Mapping): the loaded checkpoint.

    Returns:
        OrderedDict: ``backbone.*``, ``neck.*`` and ``target_encoder.*`` tensors.
    """
    parts = [p for p in IJEPA_PARTS if isinstance(ckpt.get(p), Mapping)]
    if not parts:
        raise PeraDataError(
            f'not an I-JEPA checkpoint: expected some of {list(IJEPA_PARTS)} as state '
            f'dicts, found keys {sorted(ckpt)[:8]}'
        )
    out = OrderedDict()
    for part in parts:
        for name, value in ckpt[part].items():
            name = _strip_module(name)
            if part == 'predictor':
                name = ijepa_predictor_name(name)
            out[IJEPA_PARTS[part] + name] = value
    return out


def load_ijepa_checkpoint(model: torch.nn.Module, source: Union[str, Mapping]) -> Dict[str, list]:
    """Load a reference I-JEPA checkpoint into an ``IJEPA`` model and report the keys.

    Args:
        model (nn.Module): an ``IJEPA``.
        source (str | Mapping): a checkpoint path or the loaded dict.

    Returns:
        dict: ``missing`` and ``unexpected`` key lists (also logged).
    """
    if isinstance(source, str):
        if not osp.isfile(source):
            raise PeraFileNotFoundError(f'I-JEPA checkpoint not found: {source}')
        source = load_checkpoint_dict(source)
    state = convert_ijepa_checkpoint(source)
    result = model.load_state_dict(state, strict=False)
    report = dict(missing=list(result.missing_keys), unexpected=list(result.unexpected_keys))
    MMLogger.get_current_instance().info(
        f'I-JEPA checkpoint: {len(state)} tensors loaded; missing keys '
        f'{report["missing"] or "none"}; unexpected keys {report["unexpected"] or "none"}'
    )
    return report
