"""Utilities shared by pera-mm's tools and modules."""
from .checkpoint_convert import (CheckpointConvertError,
                                 convert_official_to_pera, extract_backbone)
from .torch_load_compat import mmengine_safe_globals, setup_torch_load_compat

__all__ = [
    'setup_torch_load_compat', 'mmengine_safe_globals',
    'CheckpointConvertError', 'convert_official_to_pera', 'extract_backbone'
]
