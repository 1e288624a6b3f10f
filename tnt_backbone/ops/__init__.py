from .gelu import HAS_GELU_KERNEL, gelu_backward
from .layer_norm import HAS_LAYER_NORM_KERNEL, layer_norm
from .linear import linear, linear_grad_input
from .word_attention import HAS_TRITON, HAS_WORD_ATTENTION_KERNEL, select_path, word_attention

__all__ = ['HAS_GELU_KERNEL', 'HAS_LAYER_NORM_KERNEL', 'HAS_TRITON', 'HAS_WORD_ATTENTION_KERNEL',
           'gelu_backward', 'layer_norm', 'linear', 'linear_grad_input', 'select_path',
           'word_attention']
