from .dino_cls_loss import DINOClsLoss
from .gram_loss import GramLoss
from .koleo_loss import KoLeoLoss
from .patch_info_nce_loss import PatchInfoNCELoss
from .pixel_mse_loss import PixelMSELoss
from .similarity_target_loss import SimilarityTargetLoss

__all__ = [
    'DINOClsLoss',
    'KoLeoLoss',
    'PixelMSELoss',
    'PatchInfoNCELoss',
    'SimilarityTargetLoss',
    'GramLoss',
]
