from .word_attention import HAS_TRITON, HAS_WORD_ATTENTION_KERNEL, select_path, word_attention

__all__ = ['HAS_TRITON', 'HAS_WORD_ATTENTION_KERNEL', 'select_path', 'word_attention']
