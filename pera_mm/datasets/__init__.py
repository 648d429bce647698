from .change_detection_dataset import (
    ChangeDetectionDataset,
    DSIFNCDChangeDataset,
    LEVIRCDChangeDataset,
)
from .dior_dataset import DIOR_CLASSES, DIORDataset
from .geobench_seg_dataset import (
    GEOBENCH_S2_BANDS,
    GEOBENCH_TASKS,
    GeoBenchSegDataset,
    LoadGeoBenchSample,
    geobench_band_name,
    geobench_band_stats,
    read_geobench_sample,
)
from .mados_dataset import MADOS_CLASSES, LoadMADOSSample, MADOSDataset, read_mados_crop
from .paired_hr_mr_dataset import PairedHRMRDataset
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
    'PairedHRMRDataset',
    'GeoBenchSegDataset',
    'LoadGeoBenchSample',
    'GEOBENCH_S2_BANDS',
    'GEOBENCH_TASKS',
    'geobench_band_name',
    'geobench_band_stats',
    'read_geobench_sample',
    'MADOSDataset',
    'LoadMADOSSample',
    'MADOS_CLASSES',
    'read_mados_crop',
]
