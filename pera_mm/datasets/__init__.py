from .change_detection_dataset import (
    ChangeDetectionDataset,
    DSIFNCDChangeDataset,
    LEVIRCDChangeDataset,
)
from .dior_dataset import DIOR_CLASSES, DIORDataset
from .scene_classification_dataset import SceneClassificationDataset
from .scene_split import (
    SCENE_IMG_EXTENSIONS,
    find_class_images,
    split_scene_dataset,
    stratified_split,
)
from .transforms import (
    CheckSegLabel,
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
    'SceneClassificationDataset',
    'SCENE_IMG_EXTENSIONS',
    'find_class_images',
    'split_scene_dataset',
    'stratified_split',
    'CheckSegLabel',
    'ChangeDetectionDataset',
    'LEVIRCDChangeDataset',
    'DSIFNCDChangeDataset',
    'DIORDataset',
    'DIOR_CLASSES',
]
