from .pera_vit import PerAViT

__all__ = ['PerAViT']
