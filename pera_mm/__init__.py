"""pera-mm registers its modules into the OpenMMLab registries on import.

Use from any config with ``custom_imports=dict(imports=['pera_mm'])``.
"""

from .utils import setup_torch_load_compat
from .version import __version__

setup_torch_load_compat()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
