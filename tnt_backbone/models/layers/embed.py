"""Image -> visual words, words -> sentence embeddings, and position-embedding resizing."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .linear import Linear
from .norm import LayerNorm


class WordEmbed(nn.Module):
    """Cuts an image into 16x16-pixel sentences of 4x4 visual words each and embeds the words.

    Two public weight layouts exist and differ only here (and in :class:`WordsToSentence`):

    - ``'v2'`` (official 81.5 % weights, timm ``tnt_s_patch16_224``): sentences are cut first
      and the 7x7 stride-4 conv runs on each separately, zero-padded at sentence borders.
    - ``'legacy'`` (paper v1, timm ``tnt_s_legacy_patch16_224``, mmpretrain): the conv runs over
      the whole image, then its output is cut into 4x4 words per sentence.

    Args:
        in_channels (int): Image channels.
        word_dim (int): Word dimension c.
        patch_size (int): Sentence side in pixels. Defaults to 16.
        stride (int): Conv stride: words per sentence side is ``patch_size // stride``.
        layout (str): ``'v2'`` or ``'legacy'``.
    """

    def __init__(self, in_channels, word_dim, patch_size=16, stride=4, layout='v2'):
        super().__init__()
        if patch_size % stride:
            raise ValueError(f'patch_size {patch_size} must be a multiple of stride {stride}')
        self.patch_size = patch_size
        self.words_per_side = patch_size // stride
        self.layout = layout
        self.proj = nn.Conv2d(in_channels, word_dim, kernel_size=7, padding=3, stride=stride)

    def forward(self, x, word_pos):
        """x: (B, C, H, W), H and W multiples of ``patch_size``; word_pos: (1, c, w, w).

        Returns (B * Hp * Wp, w * w, c) word tokens, sentences in row-major order.
        """
        B, C, H, W = x.shape
        Hp, Wp, p, w = H // self.patch_size, W // self.patch_size, self.patch_size, \
            self.words_per_side
        if self.layout == 'v2':
            x = x.reshape(B, C, Hp, p, Wp, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, C, p, p)
            x = self.proj(x) + word_pos  # (B*N, c, w, w)
            # Copied to a (word, channel) layout: the residual adds would otherwise carry the
            # transposed one through every block, where LayerNorm and its backward run 2-3x
            # slower on it.
            return x.flatten(2).transpose(1, 2).contiguous()
        x = self.proj(x)  # (B, c, H/stride, W/stride)
        c = x.shape[1]
        x = x.reshape(B, c, Hp, w, Wp, w).permute(0, 2, 4, 3, 5, 1).reshape(B * Hp * Wp, w * w, c)
        return x + word_pos.flatten(2).transpose(1, 2)


class WordsToSentence(nn.Module):
    """Folds the words of each sentence into a sentence-dimension vector.

    ``norm -> Linear -> [norm]`` on the concatenated words. The stem and the v2 blocks normalise
    the concatenation (``per_word_norm=False``) and normalise the output; the legacy blocks
    normalise each word and have no output norm.

    Args:
        num_words (int): Words per sentence.
        word_dim (int): Word dimension c.
        sentence_dim (int): Sentence dimension D.
        per_word_norm (bool): LayerNorm over each word (c) instead of the whole sentence (n*c).
        bias (bool): Bias of the linear map.
        out_norm (bool): LayerNorm on the output.
    """

    def __init__(self, num_words, word_dim, sentence_dim, per_word_norm=False, bias=True,
                 out_norm=True):
        super().__init__()
        self.per_word_norm = per_word_norm
        self.norm1 = LayerNorm(word_dim if per_word_norm else num_words * word_dim)
        self.fc = Linear(num_words * word_dim, sentence_dim, bias=bias)
        self.norm2 = LayerNorm(sentence_dim) if out_norm else nn.Identity()

    def forward(self, words, batch_size):
        """words: (B * N, n, c) -> (B, N, D)."""
        if self.per_word_norm:
            x = self.norm1(words).reshape(batch_size, -1, self.fc.in_features)
        else:
            x = self.norm1(words.reshape(batch_size, -1, self.fc.in_features))
        return self.norm2(self.fc(x))


def resize_pos_embed(pos_embed, src_shape, dst_shape, num_extra_tokens=1):
    """Bicubically resizes the grid part of a (1, extra + Hs*Ws, D) position embedding.

    The leading ``num_extra_tokens`` (the class token) are kept as they are. Differentiable, so
    gradients reach the stored grid when used at forward time.

    Returns:
        Tensor: (1, extra + Hd*Wd, D); ``pos_embed`` itself when the shapes agree.
    """
    src_shape, dst_shape = tuple(src_shape), tuple(dst_shape)
    # an exported graph resizes for every input size, including the stored one
    if not torch.compiler.is_exporting() and src_shape == dst_shape:
        return pos_embed
    if pos_embed.shape[1] != num_extra_tokens + src_shape[0] * src_shape[1]:
        raise ValueError(f'position embedding of {pos_embed.shape[1]} tokens does not match a '
                         f'{src_shape} grid with {num_extra_tokens} extra tokens')
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, *src_shape, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=dst_shape, mode='bicubic', align_corners=False)
    grid = grid.to(pos_embed.dtype).flatten(2).transpose(1, 2)
    return torch.cat([extra, grid], dim=1)
