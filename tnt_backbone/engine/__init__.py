from .amp_optim_wrapper import AmpOptimWrapper
from .optim_constructor import LayerDecayOptimWrapperConstructor
from .safe_load import allow_checkpoint_globals, safe_torch_load
from .weights import load_state_dict_from, read_checkpoint, register_checkpoint_schemes, \
    select_state_dict

allow_checkpoint_globals()
register_checkpoint_schemes()

__all__ = ['AmpOptimWrapper', 'LayerDecayOptimWrapperConstructor', 'allow_checkpoint_globals',
           'load_state_dict_from', 'read_checkpoint', 'safe_torch_load', 'select_state_dict']
