from .optim_constructor import LayerDecayOptimWrapperConstructor
from .safe_load import allow_checkpoint_globals, safe_torch_load

allow_checkpoint_globals()

__all__ = ['LayerDecayOptimWrapperConstructor', 'allow_checkpoint_globals', 'safe_torch_load']
