from .dino_cls_loss import DINOClsLoss
from .koleo_loss import KoLeoLoss
from .pixel_mse_loss import PixelMSELoss

__all__ = ['DINOClsLoss', 'KoLeoLoss', 'PixelMSELoss']
