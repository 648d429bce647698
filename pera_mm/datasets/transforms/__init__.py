from .disjoint_mask_generator import (MASK_L, MASK_S, MASK_T,
                                      DisjointMaskGenerator, disjoint_counts)
from .loading import LoadRGBImageFromFile, UnreadableImageError, decode_rgb
from .multi_crop_views import PerAMultiCropViews

__all__ = [
    'LoadRGBImageFromFile', 'UnreadableImageError', 'decode_rgb',
    'PerAMultiCropViews', 'DisjointMaskGenerator', 'disjoint_counts',
    'MASK_S', 'MASK_L', 'MASK_T'
]
