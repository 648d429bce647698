from .demo_data import SCENE_TYPES, generate_demo_dataset
from .transforms import (MASK_L, MASK_S, MASK_T, DisjointMaskGenerator,
                         LoadRGBImageFromFile, PerAMultiCropViews,
                         UnreadableImageError, decode_rgb, disjoint_counts)
from .unlabeled_image_dataset import (IMG_EXTENSIONS, SkipCounter,
                                      UnlabeledImageDataset)

__all__ = [
    'UnlabeledImageDataset', 'SkipCounter', 'IMG_EXTENSIONS',
    'generate_demo_dataset', 'SCENE_TYPES', 'LoadRGBImageFromFile',
    'UnreadableImageError', 'decode_rgb', 'PerAMultiCropViews',
    'DisjointMaskGenerator', 'disjoint_counts', 'MASK_S', 'MASK_L', 'MASK_T'
]
