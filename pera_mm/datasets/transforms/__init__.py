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
from .check_seg_label import CheckSegLabel  # noqa: E402

__all__ += ['CheckSegLabel']
from .bitemporal_geometric import (  # noqa: E402
    BitemporalRandomFlip,
    BitemporalRandomResizedCrop,
    BitemporalRandomRotate90,
)
from .bitemporal_loading import (  # noqa: E402
    LoadBitemporalImagesFromFile,
    LoadChangeLabelFromFile,
    read_change_label,
    read_raster,
)
from .bitemporal_photometric import BitemporalColorJitter, BitemporalGaussianBlur  # noqa: E402

__all__ += [
    'LoadBitemporalImagesFromFile',
    'LoadChangeLabelFromFile',
    'read_raster',
    'read_change_label',
    'BitemporalRandomFlip',
    'BitemporalRandomRotate90',
    'BitemporalRandomResizedCrop',
    'BitemporalColorJitter',
    'BitemporalGaussianBlur',
]
