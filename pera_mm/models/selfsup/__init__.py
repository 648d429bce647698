from .dinov2_baseline import DINOv2Baseline
from .pera import PerA

__all__ = ['PerA', 'DINOv2Baseline']
