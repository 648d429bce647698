# Copyright (c) pera-mm contributors. All rights reserved.
"""The ViT-family weight init: one initialiser for linear weights, zero biases, unit norms."""

from typing import Callable, Tuple, Type

import torch
import torch.nn as nn


def init_linear_and_norm_layers(
    module: nn.Module,
    weight_init: Callable[[torch.Tensor], torch.Tensor],
    linear_types: Tuple[Type[nn.Module], ...] = (nn.Linear,),
) -> None:
    """Initialise every sub-module of ``module`` in ``module.modules()`` order.

    ``linear_types`` modules get ``weight_init(weight)`` and a zero bias;
    LayerNorms get unit weight and zero bias. Visiting the modules in this one
    pass keeps the random draws in the order the reference implementations use.

    Args:
        module (nn.Module): the model (or part) to initialise.
        weight_init (Callable): in-place initialiser of a weight tensor, e.g.
            ``partial(nn.init.trunc_normal_, std=0.02)`` or ``nn.init.xavier_uniform_``.
        linear_types (tuple[type]): the module types whose weight ``weight_init`` sets.
    """
    for m in module.modules():
        if isinstance(m, linear_types):
            weight_init(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
