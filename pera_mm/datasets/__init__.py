from .transforms import (
    DisjointMaskGenerator,
    LoadRGBImageFromFile,
    PerAMultiCropViews,
    UnreadableImageError,
    decode_rgb,
    disjoint_counts,
)
from .unlabeled_image_dataset import IMG_EXTENSIONS, SkipCounter, UnlabeledImageDataset

__all__ = [
    'UnlabeledImageDataset',
    'SkipCounter',
    'IMG_EXTENSIONS',
    'LoadRGBImageFromFile',
    'UnreadableImageError',
    'decode_rgb',
    'PerAMultiCropViews',
    'DisjointMaskGenerator',
    'disjoint_counts',
]
