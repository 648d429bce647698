from mmpretrain.registry import MODELS

from .dino_head import PerADINOHead


@MODELS.register_module()
class PixelPredictionHead(PerADINOHead):
    """PerA's predictor: maps each mask-token output to the pixels of its patch.

    Same structure as the DINO head (MLP -> L2 norm -> weight-normalised linear),
    with ``patch_size**2 * img_channels`` outputs in channel-last patch order.
    The normalised bottleneck bounds each output by its row norm ``g``.
    """

    def __init__(self, in_channels, patch_size=16, img_channels=3, hidden_channels=2048,
                 bottleneck_channels=384, num_layers=3, init_cfg=None):
        super().__init__(in_channels, patch_size**2 * img_channels, hidden_channels,
                         bottleneck_channels, num_layers, init_cfg)
        self.patch_size, self.img_channels = patch_size, img_channels
