from .disjoint_mask_generator import DisjointMaskGenerator, disjoint_counts
from .loading import LoadRGBImageFromFile, UnreadableImageError, decode_rgb
from .multi_crop_views import PerAMultiCropViews

__all__ = [
    'LoadRGBImageFromFile',
    'UnreadableImageError',
    'decode_rgb',
    'PerAMultiCropViews',
    'DisjointMaskGenerator',
    'disjoint_counts',
]
