from .bit_head import BITHead
from .dino_head import PerADINOHead
from .fused_change_head import FusedChangeHead
from .latent_mim_decoder import LatentMIMDecoder
from .patch_linear_seg_head import PatchLinearSegHead
from .pixel_prediction_head import PixelPredictionHead

__all__ = [
    'PerADINOHead',
    'PixelPredictionHead',
    'BITHead',
    'FusedChangeHead',
    'LatentMIMDecoder',
    'PatchLinearSegHead',
]
