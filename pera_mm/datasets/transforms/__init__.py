from .bitemporal_geometric import (
    BitemporalRandomFlip,
    BitemporalRandomResizedCrop,
    BitemporalRandomRotate90,
)
from .bitemporal_loading import (
    LoadBitemporalImagesFromFile,
    LoadChangeLabelFromFile,
    read_change_label,
    read_raster,
)
from .bitemporal_photometric import BitemporalColorJitter, BitemporalGaussianBlur
from .check_seg_label import CheckSegLabel
from .disjoint_mask_generator import DisjointMaskGenerator, disjoint_counts
from .load_multiband_image import LoadMultiBandImageFromFile, read_multiband
from .loading import LoadRGBImageFromFile, UnreadableImageError, decode_rgb
from .multi_crop_views import PerAMultiCropViews

__all__ = [
    'LoadRGBImageFromFile',
    'UnreadableImageError',
    'decode_rgb',
    'PerAMultiCropViews',
    'DisjointMaskGenerator',
    'disjoint_counts',
    'CheckSegLabel',
    'LoadBitemporalImagesFromFile',
    'LoadChangeLabelFromFile',
    'read_raster',
    'read_change_label',
    'BitemporalRandomFlip',
    'BitemporalRandomRotate90',
    'BitemporalRandomResizedCrop',
    'BitemporalColorJitter',
    'BitemporalGaussianBlur',
    'LoadMultiBandImageFromFile',
    'read_multiband',
]
