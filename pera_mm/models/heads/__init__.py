from .dino_head import PerADINOHead
from .pixel_prediction_head import PixelPredictionHead

__all__ = ['PerADINOHead', 'PixelPredictionHead']
from .bit_head import BITHead  # noqa: E402

__all__ += ['BITHead']
