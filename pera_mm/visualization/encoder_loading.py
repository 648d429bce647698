# Copyright (c) pera-mm contributors. All rights reserved.
"""Build a config's ViT and load one encoder (teacher or student) from any PerA layout.

Accepted checkpoints: our PerA training checkpoint (``teacher.backbone.*``), its
``pera_official_to_mm`` conversion, the authors' released layout (``student.*`` /
``teacher.*`` or a teacher-only export) and ``extract_backbone`` output (PerAViT or
MMPretrain names). The loaders of :mod:`pera_mm.utils.backbone_checkpoint` find the
weights; here the file is read once and the fit to the config is checked strictly,
because a figure drawn from half-loaded weights would look plausible and be wrong.
"""

from collections import OrderedDict
from typing import Tuple

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from ..models.backbones.pera_vit import PerAViT
from ..utils.backbone_checkpoint import find_vit_weights, read_checkpoint_file
from ..utils.errors import PeraConfigError, PeraDataError

#: which encoder of a training checkpoint to read
PARTS = ('teacher', 'student')
# keys only a PerA training checkpoint (ours) has next to its student backbone
_TRAINING_ONLY = ('projector.', 'predictor.', 'mask_token', 'cls_loss.')


def backbone_config(cfg: Config) -> dict:
    """The ``PerAViT`` config of ``cfg.model`` for inference (no drop path, no init)."""
    model = cfg.get('model') or {}
    backbone = model.get('backbone')
    if not backbone or backbone.get('type') not in ('PerAViT', 'mmpretrain.PerAViT'):
        raise PeraConfigError(
            f'{cfg.filename}: model.backbone must be a PerAViT, got '
            f'{None if not backbone else backbone.get("type")!r}'
        )
    backbone = dict(backbone, drop_path_rate=0.0, with_cp=False, compile=False)
    backbone.pop('init_cfg', None)
    backbone.pop('frozen_stages', None)
    return backbone


def build_backbone(cfg: Config) -> PerAViT:
    """The config's ``PerAViT`` in eval mode, randomly initialised."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        vit = MODELS.build(backbone_config(cfg))
    return vit.eval()


def _check_part(state_dict, part: str, source: str) -> None:
    if part not in PARTS:
        raise PeraConfigError(f'part must be one of {PARTS}, got {part!r}')
    keys = list(state_dict)
    released = any(k.startswith('student.') for k in keys)
    ours_teacher = any(k.startswith('teacher.backbone.') for k in keys)
    released_teacher = any(k.startswith('teacher.') for k in keys) or any(
        k.startswith(('dino_head.', 'cls_head.')) for k in keys
    )
    training = any(k.startswith(_TRAINING_ONLY) for k in keys)
    if part == 'teacher' and training and not (ours_teacher or released_teacher):
        raise PeraDataError(
            f'{source}: a PerA training checkpoint without teacher weights (no '
            f'teacher.backbone.* keys); use one saved with its EMA teacher, or the student'
        )
    if part == 'student' and not (released or (ours_teacher and training)):
        raise PeraDataError(
            f'{source}: holds one encoder only (no student and teacher); the student '
            f'is read from PerA training checkpoints'
        )


def encoder_weights(
    state_dict, target_keys, part: str = 'teacher', source: str = '<checkpoint>'
) -> Tuple['OrderedDict', str]:
    """PerAViT-named weights of one encoder in a flat checkpoint, and the layout name.

    Raises:
        PeraDataError: a training checkpoint without the asked-for encoder, or no
            recognised ViT weights.
    """
    _check_part(state_dict, part, source)
    return find_vit_weights(state_dict, list(target_keys), part, source)


def load_weights_exactly(vit: torch.nn.Module, weights, source: str, layout: str) -> None:
    """Load ``weights`` into ``vit``: every key present, none left over, shapes equal.

    The position embedding may differ in grid size (the model resizes it).
    """
    own = vit.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    if missing or extra:
        raise PeraDataError(
            f'{source}: the {layout} weights do not fit the config backbone: '
            f'{len(missing)} missing (e.g. {missing[:2]}), {len(extra)} unexpected '
            f'(e.g. {extra[:2]}); check arch, layer_scale_init_value and qkv_bias'
        )
    for key, value in own.items():
        if key != 'pos_embed' and weights[key].shape != value.shape:
            raise PeraDataError(
                f'{source}: {key} has shape {tuple(weights[key].shape)}, the config '
                f'backbone expects {tuple(value.shape)} (is it the right config?)'
            )
    vit.load_state_dict(OrderedDict((k, weights[k]) for k in own))


def load_encoder(cfg: Config, checkpoint: str, part: str = 'teacher') -> Tuple[PerAViT, str]:
    """The config's ``PerAViT`` holding the ``part`` encoder of ``checkpoint``.

    Returns:
        tuple: (model in eval mode, layout name of the checkpoint).

    Raises:
        PeraFileNotFoundError: no such checkpoint file.
        PeraDataError: unreadable, no such encoder, or weights that do not fit.
    """
    vit = build_backbone(cfg)
    state_dict = read_checkpoint_file(checkpoint)
    weights, layout = encoder_weights(state_dict, vit.state_dict(), part, checkpoint)
    load_weights_exactly(vit, weights, checkpoint, layout)
    return vit, layout
