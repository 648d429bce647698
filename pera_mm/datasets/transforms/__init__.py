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
from .paired_false_hr import FalseHRFromMR
from .paired_formatting import PackHRMRInputs
from .paired_geometric import PairedRandomCrop, PairedRandomFlip
from .paired_loading import LoadHRMRPairFromFile, check_georef
from .paired_multi_crop_formatting import PackPerAViewsWithHR
from .paired_multi_crop_views import PairedPerAMultiCropViews

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
    'FalseHRFromMR',
    'PackHRMRInputs',
    'PairedRandomCrop',
    'PairedRandomFlip',
    'LoadHRMRPairFromFile',
    'check_georef',
    'PackPerAViewsWithHR',
    'PairedPerAMultiCropViews',
]
