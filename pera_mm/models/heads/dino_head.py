import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ..utils import WeightNormLinear


@MODELS.register_module()
class PerADINOHead(BaseModule):
    """DINO projection head: MLP -> L2 normalisation -> weight-normalised prototypes.

    ``mlp`` is ``num_layers`` linear layers (GELU between) from ``in_channels``
    through ``hidden_channels`` to ``bottleneck_channels``; the normalised
    bottleneck feeds a bias-free :class:`WeightNormLinear` to ``out_channels``.
    """

    def __init__(self, in_channels, out_channels=65536, hidden_channels=2048,
                 bottleneck_channels=384, num_layers=3, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'PerADINOHead: num_layers must be >= 1, got {num_layers}')
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [bottleneck_channels]
        layers = []
        for i in range(num_layers):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < num_layers - 1:
                layers.append(nn.GELU())
        self.mlp = nn.Sequential(*layers)
        self.last_layer = WeightNormLinear(bottleneck_channels, out_channels)

    def init_weights(self):
        super().init_weights()
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def bottleneck(self, x):
        """The L2-normalised bottleneck features that feed the prototype layer."""
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x, then=None):
        """Prototype logits; or ``then(bottleneck, prototype_weight)``.

        ``then`` runs a computation that needs the prototype matrix itself (the
        chunked DINO loss) inside this module's forward, where FSDP has the
        head's parameters gathered; outside it they are shards.
        """
        z = self.bottleneck(x)
        if then is None:
            return self.last_layer(z)
        return then(z, self.last_layer.weight)
