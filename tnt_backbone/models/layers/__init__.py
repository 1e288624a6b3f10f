from .attention import Attention, WordAttention
from .embed import PixelEmbed, WordsToSentence, resize_pos_embed
from .pyramid import SimplePyramid, WordMap
from .tnt_block import Mlp, TNTBlock, TransformerLayer

__all__ = ['Attention', 'Mlp', 'PixelEmbed', 'SimplePyramid', 'TNTBlock', 'TransformerLayer',
           'WordAttention', 'WordMap', 'WordsToSentence', 'resize_pos_embed']
