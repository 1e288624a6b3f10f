from .attention import Attention, WordAttention
from .drop_path import DropPathAdd
from .embed import WordEmbed, WordsToSentence, resize_pos_embed
from .linear import Linear
from .norm import LayerNorm, LayerNorm2d
from .tnt_block import Mlp, TNTBlock, TransformerLayer

__all__ = ['Attention', 'DropPathAdd', 'LayerNorm', 'LayerNorm2d', 'Linear', 'Mlp', 'TNTBlock',
           'TransformerLayer', 'WordAttention', 'WordEmbed', 'WordsToSentence',
           'resize_pos_embed']
