# Copyright (c) pera-mm contributors. All rights reserved.
"""A config's PerA model with the student, mask token and pixel head of a checkpoint.

Reconstructions need what only a training checkpoint holds: the student backbone
(``backbone.*``), the mask token and the pixel head (``predictor.*``). Our training
checkpoints, their ``pera_official_to_mm`` conversions and the released full layout
(converted here on the fly) are accepted.
"""

import copy
from collections import OrderedDict

from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from ..utils.backbone_checkpoint import read_checkpoint_file
from ..utils.checkpoint_convert import CheckpointConvertError, convert_official_to_pera
from ..utils.errors import PeraConfigError, PeraDataError
from .encoder_loading import backbone_config

#: the parts of a PerA model a reconstruction runs
RECONSTRUCTION_PREFIXES = ('backbone.', 'predictor.', 'mask_token')


def build_pera_model(cfg: Config):
    """The config's PerA model (eval mode, no drop path); it must have a pixel head."""
    model_cfg = copy.deepcopy(dict(cfg.get('model') or {}))
    if not model_cfg.get('predictor'):
        raise PeraConfigError(
            f'{cfg.filename}: model.predictor is not set (pixel prediction is off in '
            f'this config), so there is nothing to reconstruct'
        )
    model_cfg['backbone'] = backbone_config(cfg)
    model_cfg.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    return model.eval()


def load_reconstruction_weights(model, checkpoint: str) -> None:
    """Load the student backbone, mask token and pixel head of ``checkpoint`` into ``model``.

    Raises:
        PeraFileNotFoundError: no such file.
        PeraDataError: the checkpoint lacks these parts or they do not fit the config.
    """
    state_dict = read_checkpoint_file(checkpoint)
    if any(k.startswith('student.') for k in state_dict):
        try:
            state_dict = convert_official_to_pera(state_dict, source=checkpoint)
        except CheckpointConvertError as e:
            raise PeraDataError(str(e)) from None
    own = OrderedDict(
        (k, v) for k, v in model.state_dict().items() if k.startswith(RECONSTRUCTION_PREFIXES)
    )
    missing = [k for k in own if k not in state_dict]
    if missing:
        raise PeraDataError(
            f'{checkpoint}: {len(missing)} of the student/mask-token/pixel-head tensors are '
            f'missing (e.g. {missing[:2]}); reconstructions need a PerA training checkpoint, '
            f'not an extracted backbone'
        )
    for key, value in own.items():
        if key != 'backbone.pos_embed' and state_dict[key].shape != value.shape:
            raise PeraDataError(
                f'{checkpoint}: {key} has shape {tuple(state_dict[key].shape)}, the config '
                f'model expects {tuple(value.shape)} (is it the right config?)'
            )
    model.load_state_dict(OrderedDict((k, state_dict[k]) for k in own), strict=False)
