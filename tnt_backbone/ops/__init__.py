from .word_attention import HAS_WORD_ATTENTION_KERNEL, word_attention

__all__ = ['HAS_WORD_ATTENTION_KERNEL', 'word_attention']
