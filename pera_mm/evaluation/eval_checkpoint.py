# Copyright (c) pera-mm contributors. All rights reserved.
"""Load the weights an evaluation scores: a whole training checkpoint or an extracted backbone."""

from collections import OrderedDict

import torch.nn as nn

from ..models.backbones.pera_vit import PerAViT
from ..utils.backbone_checkpoint import load_vit_checkpoint, read_checkpoint_file
from ..utils.errors import PeraDataError
from .feature_adaptors import FeatureAdaptor, unwrap


def _strip(state_dict: dict, prefix: str) -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return OrderedDict((k[len(prefix) :], v) for k, v in state_dict.items())
    return state_dict


def load_eval_weights(model: nn.Module, adaptor: FeatureAdaptor, path: str) -> str:
    """Load ``path`` into ``model`` for evaluation; returns what was loaded.

    A checkpoint holding every key of the algorithm (a training checkpoint) is
    loaded strictly into the whole model. Anything else is taken as an
    extracted backbone and loaded into the encoder the adaptor scores (the
    PerA teacher, the I-JEPA / LatentMIM target encoder, the MAE encoder):
    through :func:`load_vit_checkpoint` for ``PerAViT`` (PerAViT or MMPretrain
    names, ``backbone.`` prefix or not), strictly otherwise.

    Raises:
        PeraFileNotFoundError: no such file.
        PeraDataError: the weights fit neither the model nor its encoder.
    """
    model = unwrap(model)
    state = read_checkpoint_file(path)
    own = model.state_dict()
    if set(own) <= set(state):
        model.load_state_dict(OrderedDict((k, state[k]) for k in own), strict=True)
        return f'{type(model).__name__} (whole model)'
    encoder = adaptor.encoder(model)
    where = f'{type(encoder).__name__} ({adaptor.describe()})'
    if isinstance(encoder, PerAViT):
        load_vit_checkpoint(encoder, path)
        return f'{where}, extracted backbone'
    weights = _strip(_strip(state, 'module.'), 'backbone.')
    enc_keys = set(encoder.state_dict())
    missing, unexpected = sorted(enc_keys - set(weights)), sorted(set(weights) - enc_keys)
    if missing or unexpected:
        raise PeraDataError(
            f'{path}: fits neither {type(model).__name__} ({len(set(own) - set(state))} keys '
            f'missing) nor its {type(encoder).__name__} ({len(missing)} missing, e.g. '
            f'{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]})'
        )
    try:
        encoder.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise PeraDataError(f'{path}: {type(encoder).__name__}: {first}') from None
    return f'{where}, extracted backbone'
