# Copyright (c) pera-mm contributors. All rights reserved.
"""Load pretrained ViT weights into ``PerAViT`` / ``PerAViTAdapter`` from any PerA layout.

Recognised layouts (after :func:`~pera_mm.utils.checkpoint_convert.unwrap_state_dict`
removed ``state_dict`` / ``model`` wrappers and ``module.`` prefixes):

- ``'pera'``: our PerA training checkpoint (``backbone.*`` + ``teacher.backbone.*``);
  the teacher backbone is taken (``part='student'`` for the student);
- ``'released'``: the authors' released code (``student.*`` / ``teacher.*``, or a
  teacher-only export with ``backbone.*`` and ``dino_head.*`` / ``cls_head.*``),
  converted by :func:`~pera_mm.utils.checkpoint_convert.convert_official_to_pera`;
- ``'backbone'``: ``extract_backbone`` output with PerAViT names, with or without a
  ``backbone.`` prefix (also a downstream model checkpoint's ``backbone.*``);
- ``'backbone-mmpretrain'``: ``extract_backbone --format mmpretrain`` output (names
  translated back through
  :func:`~pera_mm.utils.checkpoint_convert.pera_vit_to_mmpretrain`).
"""

import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.logging import MMLogger

from .checkpoint_convert import (
    CheckpointConvertError,
    convert_official_to_pera,
    flatten_block_chunks,
    is_vit_key,
    load_weights_file,
    pera_vit_to_mmpretrain,
    select_backbone,
    unwrap_state_dict,
)
from .errors import PeraDataError, PeraFileNotFoundError

# checkpoint ViT keys a model may legitimately not have (the adapter drops them)
_UNUSED_BY_ADAPTER = ('cls_token', 'norm.weight', 'norm.bias')
_EXPECTED = (
    'a PerA training checkpoint (teacher.backbone.*), extract_backbone output '
    '(PerAViT or MMPretrain names) or the released PerA layout'
)


def _vit_part(state_dict: Dict[str, torch.Tensor], prefix: str, source: str):
    sub = OrderedDict((k[len(prefix) :], v) for k, v in state_dict.items() if k.startswith(prefix))
    sub = flatten_block_chunks(sub, source)
    return OrderedDict((k, v) for k, v in sub.items() if is_vit_key(k))


def find_vit_weights(
    state_dict: Dict[str, torch.Tensor],
    target_keys: List[str],
    part: str = 'teacher',
    source: str = '<checkpoint>',
) -> Tuple['OrderedDict', str]:
    """The PerAViT-named ViT weights inside a flat checkpoint, and its layout name.

    Args:
        state_dict (dict): flat weights (see ``unwrap_state_dict``).
        target_keys (list[str]): the ViT keys of the model to load (used to translate
            MMPretrain names back).
        part (str): 'teacher' or 'student' for training checkpoints.
        source (str): file name for error messages.

    Raises:
        PeraDataError: no recognised ViT key set (one line naming ``source``).
    """
    try:
        if any(k.startswith('student.') for k in state_dict):
            converted = convert_official_to_pera(state_dict, source=source)
            return select_backbone(converted, part, source), 'released'
        if any(k.startswith('teacher.backbone.') for k in state_dict):
            return select_backbone(state_dict, part, source), 'pera'
        if part == 'teacher' and any(k.startswith('projector.') for k in state_dict):
            # a PerA training checkpoint whose teacher was dropped: never fall back to the student
            raise PeraDataError(
                f'{source}: a PerA training checkpoint without teacher weights '
                "(no 'teacher.backbone.*' keys); pass part='student' to load the student"
            )
        if any(k.startswith(('dino_head.', 'cls_head.')) for k in state_dict) and any(
            k.startswith('backbone.') for k in state_dict
        ):
            converted = convert_official_to_pera(state_dict, source=source)
            return select_backbone(converted, 'teacher', source), 'released'
    except CheckpointConvertError as e:
        raise PeraDataError(str(e)) from None
    # PerAViT or MMPretrain names, bare or under ``backbone.``: the richest match wins
    # (``pos_embed`` / ``cls_token`` are spelled alike in both).
    # (options such as register tokens have no MMPretrain name and are matched as ours only)
    to_ours = {}
    for k in target_keys:
        try:
            to_ours[pera_vit_to_mmpretrain({k: None}, source).popitem()[0]] = k
        except CheckpointConvertError:
            pass
    candidates = []
    for prefix in ('', 'backbone.'):
        candidates.append((_vit_part(state_dict, prefix, source), 'backbone'))
        candidates.append(
            (
                OrderedDict(
                    (to_ours[k[len(prefix) :]], v)
                    for k, v in state_dict.items()
                    if k.startswith(prefix) and k[len(prefix) :] in to_ours
                ),
                'backbone-mmpretrain',
            )
        )
    vit, layout = max(candidates, key=lambda c: len(c[0]))
    if vit:
        return vit, layout
    sample = ', '.join(list(state_dict)[:3]) or 'none'
    raise PeraDataError(
        f'{source}: no recognised ViT weights (keys like {sample}); expected {_EXPECTED}'
    )


def read_checkpoint_file(path: str) -> Dict[str, torch.Tensor]:
    """A checkpoint file as flat weights.

    Args:
        path (str): local path of the checkpoint, or a URL / ``scheme://`` name
            MMEngine's ``CheckpointLoader`` resolves (downloaded to its cache).

    Raises:
        PeraFileNotFoundError: the file does not exist.
        PeraDataError: it is not a weights-only torch checkpoint of tensors.
    """
    if '://' in path:
        from mmengine.runner import CheckpointLoader

        try:
            obj = CheckpointLoader.load_checkpoint(path, map_location='cpu')
            return unwrap_state_dict(obj if isinstance(obj, dict) else {}, path)
        except CheckpointConvertError as e:
            raise PeraDataError(str(e)) from None
    obj = load_checkpoint_dict(path)
    try:
        return unwrap_state_dict(obj, path)
    except CheckpointConvertError as e:
        raise PeraDataError(str(e)) from None


def load_checkpoint_dict(path: str) -> dict:
    """A local weights-only torch checkpoint as the dict it holds.

    Raises:
        PeraFileNotFoundError: the file does not exist.
        PeraDataError: it cannot be read as a weights-only dict checkpoint.
    """
    if not osp.isfile(path):
        raise PeraFileNotFoundError(f'{path}: no such checkpoint file')
    try:
        return load_weights_file(path)
    except CheckpointConvertError as e:
        raise PeraDataError(str(e)) from None


def load_vit_checkpoint(
    model: torch.nn.Module,
    path: str,
    prefix: Optional[str] = None,
    part: str = 'teacher',
    logger: Optional[MMLogger] = None,
) -> dict:
    """Load the ViT weights of a checkpoint into a ``PerAViT`` or ``PerAViTAdapter``.

    Every ViT parameter of ``model`` must be found with the right shape (the
    position embedding is resized by the model when its grid differs). Keys of the
    checkpoint's ViT the model lacks (``cls_token`` and ``norm.*`` for the adapter)
    are reported as unexpected (any other one is an error); the model's non-ViT
    (adapter-only) keys keep their initialisation and are reported as missing. The
    report is logged and returned.

    Args:
        model (nn.Module): the backbone.
        path (str): checkpoint file.
        prefix (str, optional): keep only keys starting with it and strip it
            first (MMEngine's ``Pretrained`` ``prefix``).
        part (str): 'teacher' (default) or 'student' in training checkpoints.
        logger (MMLogger, optional): defaults to the current MMLogger.

    Returns:
        dict: ``layout``, ``loaded`` (list of keys), ``missing`` (model keys not
        loaded), ``unexpected`` (checkpoint ViT keys the model has no place for).

    Raises:
        PeraFileNotFoundError: no such file.
        PeraDataError: no recognised ViT keys, a missing ViT key or a shape mismatch.
    """
    state_dict = read_checkpoint_file(path)
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state_dict = OrderedDict(
            (k[len(prefix) :], v) for k, v in state_dict.items() if k.startswith(prefix)
        )
        if not state_dict:
            raise PeraDataError(f'{path}: no key starts with the prefix {prefix!r}')
    own = model.state_dict()
    target_vit = [k for k in own if is_vit_key(k)]
    vit, layout = find_vit_weights(state_dict, target_vit, part, path)
    missing_vit = [k for k in target_vit if k not in vit]
    if missing_vit:
        raise PeraDataError(
            f'{path}: {len(missing_vit)} ViT key(s) of {type(model).__name__} '
            f'missing in the {layout} layout, e.g. {missing_vit[:3]}'
        )
    for key in target_vit:
        if key != 'pos_embed' and vit[key].shape != own[key].shape:
            raise PeraDataError(
                f'{path}: {key} has shape {tuple(vit[key].shape)}, '
                f'{type(model).__name__} expects {tuple(own[key].shape)}'
            )
    unexpected = [k for k in vit if k not in own]
    dropped = [k for k in unexpected if k not in _UNUSED_BY_ADAPTER]
    if dropped:
        raise PeraDataError(
            f'{path}: ViT key(s) {dropped[:3]} ({len(dropped)}) have no place in '
            f'{type(model).__name__} '
            '(check num_register_tokens, layer_scale_init_value, qkv_bias, mlp_type)'
        )
    result = model.load_state_dict(OrderedDict((k, vit[k]) for k in target_vit), strict=False)
    report = dict(
        layout=layout, loaded=target_vit, missing=sorted(result.missing_keys), unexpected=unexpected
    )
    (logger or MMLogger.get_current_instance()).info(
        f'{type(model).__name__}: loaded {len(target_vit)} ViT tensors from {path} '
        f'({layout} layout, {part if layout in ("pera", "released") else "backbone"}); '
        f'missing (kept initialisation): {len(report["missing"])} non-ViT tensor(s)'
        f'{" e.g. " + str(report["missing"][:3]) if report["missing"] else ""}; '
        f'unexpected (unused): {unexpected}'
    )
    return report
