from .pera import PerA

__all__ = ['PerA']
