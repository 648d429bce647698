"""Utilities shared by pera-mm's tools and modules."""
from .torch_load_compat import mmengine_safe_globals, setup_torch_load_compat

__all__ = ['setup_torch_load_compat', 'mmengine_safe_globals']
