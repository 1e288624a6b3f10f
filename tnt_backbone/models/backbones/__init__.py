from .pyramid_tnt import PyramidTNT
from .tnt import TNT

__all__ = ['PyramidTNT', 'TNT']
