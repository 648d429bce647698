from .pera_vit import PerAViT
from .pera_vit_adapter import PerAViTAdapter

__all__ = ['PerAViT', 'PerAViTAdapter']
from .bit_resnet18 import BITResNet18  # noqa: E402

__all__ += ['BITResNet18']
