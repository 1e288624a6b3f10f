from . import classifiers  # noqa: F401
from . import decode_heads  # noqa: F401
from .backbones import TNT
from .backbones.pyramid_tnt import PyramidTNT
from .necks import SimpleFeaturePyramid

__all__ = ['PyramidTNT', 'SimpleFeaturePyramid', 'TNT']
