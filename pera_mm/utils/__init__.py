"""Utilities shared by pera-mm's tools and modules."""

from .checkpoint_convert import (
    KEEP_CHOICES,
    CheckpointConvertError,
    convert_official_to_pera,
    extract_backbone,
    select_kept,
)
from .device import amp_device_available
from .errors import (
    PeraConfigError,
    PeraDataError,
    PeraError,
    PeraFileNotFoundError,
    PeraTrainingStopped,
)
from .scene_generator import SCENE_TYPES, generate_demo_dataset
from .timm_export import export_timm, find_encoder, prepare_timm_export
from .torch_load_compat import mmengine_safe_globals, setup_torch_load_compat

__all__ = [
    'setup_torch_load_compat',
    'mmengine_safe_globals',
    'CheckpointConvertError',
    'convert_official_to_pera',
    'extract_backbone',
    'amp_device_available',
    'SCENE_TYPES',
    'generate_demo_dataset',
    'PeraError',
    'PeraConfigError',
    'PeraDataError',
    'PeraFileNotFoundError',
    'PeraTrainingStopped',
    'KEEP_CHOICES',
    'select_kept',
    'export_timm',
    'find_encoder',
    'prepare_timm_export',
]
