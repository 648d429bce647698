from .bit_resnet18 import BITResNet18
from .ijepa_vit import IJEPAViT
from .latent_mim_vit import LatentMIMViT
from .pera_vit import PerAViT
from .pera_vit_adapter import PerAViTAdapter

__all__ = ['PerAViT', 'PerAViTAdapter', 'BITResNet18', 'LatentMIMViT', 'IJEPAViT']
