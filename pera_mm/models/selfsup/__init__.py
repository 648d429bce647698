from .dinov2_baseline import DINOv2Baseline
from .ijepa import IJEPA
from .latent_mim import LatentMIM
from .pera import PerA
from .spatial_affinity import SpatialAffinity

__all__ = ['PerA', 'DINOv2Baseline', 'LatentMIM', 'IJEPA', 'SpatialAffinity']
