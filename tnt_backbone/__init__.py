"""TNT (Transformer iN Transformer) backbone for OpenMMLab detection, segmentation and
classification."""
from . import datasets, engine, evaluation  # noqa: F401  (register modules; allow safe loads)
from .models import TNT

__version__ = '0.1.0'
__all__ = ['TNT']
