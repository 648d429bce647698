# Copyright (c) pera-mm contributors. All rights reserved.
"""DINO projection head with weight-normalised prototypes."""

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.errors import PeraConfigError
from ..utils import WeightNormLinear
from ..utils.onednn_linear import check_kernel, linear_module


@MODELS.register_module()
class PerADINOHead(BaseModule):
    """DINO projection head: MLP -> L2 normalisation -> weight-normalised prototypes.

    Args:
        in_channels (int): input width; PerA fills in its backbone's width.
        out_channels (int): prototypes K. Defaults to 65536.
        hidden_channels (int): width of the hidden MLP layers. Defaults to 2048.
        bottleneck_channels (int): width of the normalised bottleneck that feeds
            the bias-free :class:`WeightNormLinear`. Defaults to 384.
        num_layers (int): linear layers of the MLP (GELU between). Defaults to 3.
        linear_kernel (str): kernel of the MLP and prototype linears, one of
            :data:`~pera_mm.models.utils.onednn_linear.LINEAR_KERNELS`. Defaults
            to 'auto' (oneDNN for fp32 on CPU, aten elsewhere), where it was
            measured (``docs/benchmarks.md``).
        init_cfg (dict, optional): MMEngine initialisation config.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 65536,
        hidden_channels: int = 2048,
        bottleneck_channels: int = 384,
        num_layers: int = 3,
        linear_kernel: str = 'auto',
        init_cfg: Optional[dict] = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise PeraConfigError(
                f'{type(self).__name__}: num_layers must be >= 1, got {num_layers}'
            )
        self.linear_kernel = check_kernel(linear_kernel, type(self).__name__)
        self.out_channels = out_channels
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [bottleneck_channels]
        layers = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = WeightNormLinear(bottleneck_channels, out_channels)

    def init_weights(self):
        """Truncated-normal MLP weights, zero biases (the prototypes init themselves)."""
        super().init_weights()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck features that feed the prototype layer."""
        for layer in self.mlp:
            x = linear_module(layer, x, self.linear_kernel)
        return F.normalize(x, dim=-1)

    def forward(self, x: torch.Tensor, then: Optional[Callable] = None):
        """Prototype logits; or ``then(bottleneck, prototype_weight)``.

        ``then`` runs a computation that needs the prototype matrix itself (the
        chunked DINO loss) inside this module's forward, where FSDP has the
        head's parameters gathered; outside it they are shards.
        """
        z = self.bottleneck(x)
        if then is None:
            return self.last_layer(z, self.linear_kernel)
        return then(z, self.last_layer.weight)
