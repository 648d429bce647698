"""pera-mm registers its modules into the OpenMMLab registries on import.

Use from any config with ``custom_imports=dict(imports=['pera_mm'])``.
"""
from .version import __version__
from .utils import setup_torch_load_compat

setup_torch_load_compat()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
