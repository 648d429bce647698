from .pera_vit import PerAViT
from .pera_vit_adapter import PerAViTAdapter

__all__ = ['PerAViT', 'PerAViTAdapter']
