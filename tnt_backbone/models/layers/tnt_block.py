"""The TNT block: a word layer, words folded into sentences, a sentence layer."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from tnt_backbone.ops import gelu_backward, linear, linear_grad_input

from .attention import Attention, WordAttention
from .drop_path import DropPathAdd
from .embed import WordsToSentence
from .linear import Linear
from .norm import LayerNorm


class GeluLinear(torch.autograd.Function):
    """``linear(gelu(h), weight, bias)`` that keeps only ``h`` for backward.

    Autograd would keep both ``h`` and ``gelu(h)``, two hidden-size tensors per MLP;
    recomputing the elementwise GELU in backward is cheap and saves one of them (about 30 % of
    a TNT block's activation memory at 512x512). The recomputation and GELU's backward share
    one pass over ``h`` (:func:`~tnt_backbone.ops.gelu_backward`). The linear and its input
    gradient go through oneDNN on the CPU, as :class:`~tnt_backbone.ops.linear.OneDNNLinear`.
    """

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        return linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        h, weight = ctx.saved_tensors
        # Under autocast the forward matmul ran in grad_out's dtype (e.g. bf16) while the
        # weight is stored in fp32; backward runs outside autocast, so cast as it did.
        weight = weight.to(grad_out.dtype)
        g = grad_out.reshape(-1, grad_out.shape[-1])
        act, grad_h = gelu_backward(linear_grad_input(grad_out, weight), h)
        return grad_h, g.t() @ act.reshape(-1, act.shape[-1]), g.sum(0)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, with dropout after each. (..., dim) -> (..., dim).

    Training keeps only the hidden pre-activation (:class:`GeluLinear`); inference applies the
    GELU within the first linear where it can (:func:`~tnt_backbone.ops.linear`).
    """

    def __init__(self, dim, hidden_dim, drop=0.):
        super().__init__()
        self.fc1 = Linear(dim, hidden_dim)
        self.fc2 = Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        if torch.is_grad_enabled() and not self.drop.p:
            return GeluLinear.apply(self.fc1(x), self.fc2.weight, self.fc2.bias)
        return self.drop(self.fc2(self.drop(linear(x, self.fc1.weight, self.fc1.bias, 'gelu'))))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Args:
        dim (int): Token dimension.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP hidden size over ``dim``.
        qkv_bias (bool): Bias on the qkv projection.
        drop (float): Dropout after projections.
        attn_drop (float): Dropout on attention weights.
        drop_path (float): Stochastic-depth rate of both residual branches.
        window_size (int): See :class:`Attention`; sentence layers only.
        words (bool): Attention among the words of each sentence (:class:`WordAttention`)
            instead of :class:`Attention`.
    """

    def __init__(self, dim, num_heads, mlp_ratio=4., qkv_bias=False, drop=0., attn_drop=0.,
                 drop_path=0., window_size=0, words=False):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = WordAttention(dim, num_heads, qkv_bias, attn_drop, drop) if words else \
            Attention(dim, num_heads, qkv_bias, attn_drop, drop, window_size)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path_add = DropPathAdd(drop_path)

    def forward(self, x, hw_shape=None, num_queries=None):
        """x: (B, N, dim) -> (B, N, dim), or (B, num_queries, dim): the first tokens only
        (see :class:`Attention`)."""
        shortcut = x if num_queries is None else x[:, :num_queries]
        x = self.drop_path_add(shortcut, self.attn(self.norm1(x), hw_shape, num_queries))
        return self.drop_path_add(x, self.mlp(self.norm2(x)))


class TNTBlock(nn.Module):
    """One TNT block: a word layer, the words folded into their sentence, a sentence layer.

    Args:
        word_dim (int): Word dimension c.
        sentence_dim (int): Sentence dimension D.
        num_words (int): Words per sentence n (16 for 16x16 sentences of 4x4 words).
        word_heads (int): Heads of the word layer.
        sentence_heads (int): Heads of the sentence layer.
        mlp_ratio (float): MLP ratio of the sentence layer (the word layer always uses 4).
        layout (str): ``'v2'`` or ``'legacy'``: how words are folded into sentences.
        window_size (int): Windowed sentence attention if > 0 (see :class:`Attention`).
        qkv_bias, drop, attn_drop, drop_path: as in :class:`TransformerLayer`.
    """

    def __init__(self, word_dim, sentence_dim, num_words, word_heads, sentence_heads,
                 mlp_ratio=4., layout='v2', window_size=0, qkv_bias=False, drop=0.,
                 attn_drop=0., drop_path=0.):
        super().__init__()
        common = dict(qkv_bias=qkv_bias, drop=drop, attn_drop=attn_drop, drop_path=drop_path)
        self.word_layer = TransformerLayer(word_dim, word_heads, 4., words=True, **common)
        legacy = layout == 'legacy'
        self.words_to_sentence = WordsToSentence(num_words, word_dim, sentence_dim,
                                                 per_word_norm=legacy, bias=legacy,
                                                 out_norm=not legacy)
        self.sentence_layer = TransformerLayer(sentence_dim, sentence_heads, mlp_ratio,
                                               window_size=window_size, **common)

    def forward(self, words, sentences, hw_shape, cls_only=False, checkpoint_words=False):
        """words: (B*N, n, c); sentences: (B, 1 + N, D), class token first; hw_shape: (Hp, Wp).

        Returns the updated (words, sentences), same shapes; with ``cls_only`` the sentences
        returned are the class token only, (B, 1, D). ``checkpoint_words`` recomputes the word
        layer and the fold in backward instead of keeping their activations.
        """
        if checkpoint_words:
            words, update = cp.checkpoint(self._words, words, sentences.shape[0],
                                          use_reentrant=False)
        else:
            words, update = self._words(words, sentences.shape[0])
        sentences = sentences + F.pad(update, (0, 0, 1, 0))  # class token gets no update
        return words, self.sentence_layer(sentences, hw_shape, 1 if cls_only else None)

    def _words(self, words, batch_size):
        """The word layer, then its output folded into a sentence update (B, N, D)."""
        words = self.word_layer(words)
        return words, self.words_to_sentence(words, batch_size)
