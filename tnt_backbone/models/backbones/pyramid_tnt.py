"""PyramidTNT backbone (Han et al., arXiv 2201.00978) for any input size.

Four stages of TNT blocks at sentence strides 8/16/32/64, each sentence holding 4x4 visual
words (word strides 2/4/8/16). Key names follow this package's vocabulary; the official
huawei-noah release is converted by :func:`convert_pyramid_tnt` at the bottom.
"""
import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ...registry import MODELS
from ..layers import (DropPathAdd, LayerNorm, Linear, Mlp, WordAttention, WordsToSentence,
                      resize_pos_embed)
from .common import FreezeMixin, check_image_batch, init_linear_and_norm

WORDS_PER_SIDE = 4
NUM_WORDS = WORDS_PER_SIDE ** 2
STEM_STRIDE = 8
SR_RATIOS = (4, 2, 1, 1)
# scores per chunk of the CPU attention backward's recomputation (4 MiB in fp32: 1.2-1.5x
# faster than 1 or 16 MiB at 800x1333), and the most scores a CPU training step keeps whole
# for backward instead (see biased_attention)
SCORES_CHUNK = 1 << 20
MAX_KEPT_SCORES = 1 << 22
ARCH_KEYS = ('depths', 'word_dims', 'sentence_dims', 'word_heads', 'sentence_heads')


def _arch(depths, word_dim, sentence_dim, word_heads, sentence_heads, img_size):
    scale = (1, 2, 4, 4)
    return dict(depths=depths, word_dims=[word_dim * s for s in scale],
                sentence_dims=[sentence_dim * s for s in scale],
                word_heads=[word_heads * s for s in scale],
                sentence_heads=[sentence_heads * s for s in scale], img_size=img_size)


def _bicubic_matrix(src, dst, device):
    """The (dst, src) matrix of a 1-D bicubic resize, exactly F.interpolate's weights
    (align_corners=False, edges clamped): F.interpolate applied to the identity."""
    eye = torch.eye(src, device=device).reshape(src, 1, src, 1)
    return F.interpolate(eye, size=(dst, 1), mode='bicubic', align_corners=False) \
        .reshape(src, dst).t().contiguous()


def resize_attn_bias(bias, src_query, src_key, dst_query, dst_key):
    """Bicubically resizes a (1, heads, Hq*Wq, Hk*Wk) attention bias on both of its grids.

    Bicubic resizing is separable, so the bias is multiplied by the 1-D resize matrices of the
    four grid axes: the key grid's as one (Nk', Nk) Kronecker product, then the query grid's
    width and height, each a matrix product that writes a contiguous result. At 800x1333
    (PyramidTNT-S's first stage) that is 1.3x faster forward and 2x backward than
    ``F.interpolate`` on the permuted bias, whose transposed result attention also copied in
    every block. Differentiable; returns ``bias`` itself when both grids agree.
    """
    src_query, src_key = tuple(src_query), tuple(src_key)
    dst_query, dst_key = tuple(dst_query), tuple(dst_key)
    if (src_query, src_key) == (dst_query, dst_key):
        return bias
    heads = bias.shape[1]
    if bias.shape[2:] != (math.prod(src_query), math.prod(src_key)):
        raise ValueError(f'attention bias of shape {tuple(bias.shape)} does not match a '
                         f'{src_query} query grid and a {src_key} key grid')
    (qh, qw), (dqh, dqw) = src_query, dst_query
    x = bias.float().reshape(heads, qh, qw, -1)
    if src_key != dst_key:
        resize = torch.kron(*(_bicubic_matrix(s, d, bias.device)
                              for s, d in zip(src_key, dst_key)))
        x = x @ resize.t()
    if qw != dqw:
        x = _bicubic_matrix(qw, dqw, bias.device) @ x
    if qh != dqh:
        x = _bicubic_matrix(qh, dqh, bias.device) @ x.reshape(heads, qh, -1)
    return x.reshape(1, heads, dqh * dqw, -1).to(bias.dtype)


class _BiasedAttentionCPU(torch.autograd.Function):
    """SDPA with a learned additive bias, for CPU training.

    With a bias that needs a gradient, SDPA on the CPU takes its unfused path, which keeps
    every block's (B, heads, Nq, Nk) attention matrix until backward (at 800x1333 more than
    the resized biases themselves). Here the forward runs the fused flash kernel and keeps
    only its inputs, output and log-sum-exp. The backward recomputes the scores in query
    chunks and takes all four gradients from each chunk: the bias gradient needs the
    probabilities and their gradient anyway, and reusing them for q, k and v is 1.5-1.7x
    faster than also running the flash backward, which recomputes them once more.
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, scale):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, attn_mask=bias, scale=scale)
        ctx.save_for_backward(q, k, v, bias, out, lse)
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        # P = exp(S - lse), S = q k^T * scale + bias; dS = P * (dO v^T - rowsum(dO * out)):
        # d bias = dS summed over the batch, dq = dS k * scale, dk = dS^T q * scale, dv = P^T dO
        q, k, v, bias, out, lse = ctx.saved_tensors
        dtype = q.dtype  # bf16/fp16 (autocast) are computed and summed over chunks in fp32
        q, k, v, out, grad_out = (t.float() for t in (q, k, v, out, grad_out))
        B, heads, Nq, _ = q.shape
        neg_rowsum = (grad_out * out).sum(-1, keepdim=True).neg_()
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        grad_bias = torch.empty_like(bias)
        chunk = max(1, SCORES_CHUNK // (B * heads * k.shape[2]))
        for s in range(0, Nq, chunk):
            e = min(s + chunk, Nq)
            q_s, grad_out_s = q[:, :, s:e], grad_out[:, :, s:e]
            p = (q_s @ k.transpose(-1, -2)).mul_(ctx.scale).add_(bias[:, :, s:e]).sub_(
                lse[:, :, s:e, None]).exp_()
            grad_v += p.transpose(-1, -2) @ grad_out_s
            ds = (grad_out_s @ v.transpose(-1, -2)).add_(neg_rowsum[:, :, s:e]).mul_(p)
            grad_bias[:, :, s:e] = ds.sum(0, keepdim=True) if B > 1 else ds
            grad_q[:, :, s:e] = ds @ k
            grad_k += ds.transpose(-1, -2) @ q_s
        grad_q *= ctx.scale
        grad_k *= ctx.scale
        return grad_q.to(dtype), grad_k.to(dtype), grad_v.to(dtype), grad_bias, None


def biased_attention(q, k, v, bias, scale, dropout_p=0.):
    """``softmax(q k^T * scale + bias) v`` for (B, heads, N, d) q/k/v and a (1, heads, Nq, Nk)
    bias (or None).

    On the CPU with a bias that needs a gradient, score matrices of more than
    ``MAX_KEPT_SCORES`` elements go through :class:`_BiasedAttentionCPU` (same values, less
    memory); smaller ones through autograd on the plain math, which keeps the probabilities
    and is faster there (one attention of PyramidTNT-S's first stage at 256, batch 8, forward
    and backward: 15-20 against 20-24 ms chunked; see the README).
    """
    if bias is not None and bias.requires_grad and torch.is_grad_enabled() \
            and q.device.type == 'cpu' and not dropout_p:
        if math.prod(q.shape[:3]) * k.shape[2] > MAX_KEPT_SCORES:
            return _BiasedAttentionCPU.apply(q, k, v, bias, scale)
        return torch.softmax((q @ k.transpose(-1, -2)).mul_(scale).add_(bias), -1) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p,
                                          scale=scale)


class SpatialReductionAttention(nn.Module):
    """Sentence attention whose keys/values come from an average-pooled grid (PVT style), plus
    a learned (1, heads, Nq, Nk) bias on the scores.

    Args:
        dim (int): Sentence dimension D.
        num_heads (int): Heads; must divide ``dim``.
        sr_ratio (int): Keys/values from ``sr_ratio x sr_ratio`` average pools (then Linear and
            LayerNorm) if > 1. Defaults to 1.
        qkv_bias (bool): Defaults to False.
        attn_drop (float): Dropout on attention weights. Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
    """

    def __init__(self, dim, num_heads, sr_ratio=1, qkv_bias=False, attn_drop=0., proj_drop=0.):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.sr_ratio = sr_ratio
        self.attn_drop = attn_drop
        self.q = Linear(dim, dim, bias=qkv_bias)
        self.kv = Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.reduce = Linear(dim, dim)
            self.reduce_norm = LayerNorm(dim)

    def forward(self, x, grid, bias=None):
        """x: (B, H*W, D), grid: (H, W), bias: (1, heads, H*W, Nk) or None -> (B, H*W, D)."""
        B, N, C = x.shape
        q = self.q(x).reshape(B, N, self.num_heads, -1).transpose(1, 2)
        if self.sr_ratio > 1:
            x = x.transpose(1, 2).reshape(B, C, *grid)
            x = F.avg_pool2d(x, self.sr_ratio).flatten(2).transpose(1, 2)
            x = self.reduce_norm(self.reduce(x))
        k, v = self.kv(x).reshape(B, -1, 2, self.num_heads, C // self.num_heads) \
            .permute(2, 0, 3, 1, 4).unbind(0)
        out = biased_attention(q, k, v, None if bias is None else bias.to(q.dtype),
                               self.scale, self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, N, C)))


class SqueezeExcite(nn.Module):
    """The official optional SE: ``x * tanh(fc2(relu(fc1(norm(mean over tokens)))))``."""

    def __init__(self, dim, hidden_ratio=0.25):
        super().__init__()
        hidden = int(dim * hidden_ratio)
        self.norm = LayerNorm(dim)
        self.fc1 = Linear(dim, hidden)
        self.fc2 = Linear(hidden, dim)

    def forward(self, x):
        a = self.fc2(F.relu(self.fc1(self.norm(x.mean(dim=1, keepdim=True)))))
        return x * torch.tanh(a)


class PyramidTNTBlock(nn.Module):
    """One PyramidTNT block: [word transformer, words folded into sentences,] sentence
    transformer with spatial-reduction attention [and SE].

    The word transformer normalises all the words of a sentence together (LayerNorm over
    n * c), as the official code does, unlike TNT's per-word norm.

    Args:
        word_dim (int): Word dimension c; 0 for a block without a word transformer.
        sentence_dim (int): Sentence dimension D.
        word_heads (int): Heads of the word attention.
        sentence_heads (int): Heads of the sentence attention.
        sr_ratio (int): Spatial-reduction ratio of the sentence attention.
        mlp_ratio (float): MLP hidden size over the token dimension (both transformers).
        qkv_bias (bool): Bias on the q/k/v projections.
        drop (float): Dropout after projections.
        attn_drop (float): Dropout on attention weights.
        drop_path (float): Stochastic depth of every residual branch.
        with_se (bool): SE on the sentence MLP's output.
    """

    def __init__(self, word_dim, sentence_dim, word_heads, sentence_heads, sr_ratio=1,
                 mlp_ratio=4., qkv_bias=False, drop=0., attn_drop=0., drop_path=0.,
                 with_se=False):
        super().__init__()
        self.has_words = word_dim > 0
        if self.has_words:
            self.word_norm1 = LayerNorm(NUM_WORDS * word_dim)
            self.word_attn = WordAttention(word_dim, word_heads, qkv_bias, attn_drop, drop)
            self.word_norm2 = LayerNorm(NUM_WORDS * word_dim)
            self.word_mlp = Mlp(word_dim, int(word_dim * mlp_ratio), drop)
            self.word_to_sentence = WordsToSentence(NUM_WORDS, word_dim, sentence_dim,
                                                    bias=False)
        self.sentence_norm1 = LayerNorm(sentence_dim)
        self.sentence_attn = SpatialReductionAttention(sentence_dim, sentence_heads, sr_ratio,
                                                       qkv_bias, attn_drop, drop)
        self.sentence_norm2 = LayerNorm(sentence_dim)
        self.sentence_mlp = Mlp(sentence_dim, int(sentence_dim * mlp_ratio), drop)
        self.se = SqueezeExcite(sentence_dim) if with_se else None
        self.drop_path_add = DropPathAdd(drop_path)

    def _word_norm(self, norm, words, batch_size):
        return norm(words.reshape(batch_size, -1, norm.normalized_shape[0])) \
            .reshape(words.shape)

    def forward(self, words, sentences, grid, bias, checkpoint_words=False):
        """words: (B*N, 16, c); sentences: (B, N, D); grid: (H, W) of the N sentences;
        bias: the sentence attention's (1, heads, N, Nk) or None. Returns (words, sentences).
        ``checkpoint_words`` recomputes the word transformer and the fold in backward instead
        of keeping their activations."""
        if self.has_words:
            if checkpoint_words:
                words, update = cp.checkpoint(self._words, words, sentences.shape[0],
                                              use_reentrant=False)
            else:
                words, update = self._words(words, sentences.shape[0])
            sentences = sentences + update
        sentences = self.drop_path_add(
            sentences, self.sentence_attn(self.sentence_norm1(sentences), grid, bias))
        update = self.sentence_mlp(self.sentence_norm2(sentences))
        if self.se is not None:
            update = update + self.se(update)
        return words, self.drop_path_add(sentences, update)

    def _words(self, words, batch_size):
        """The word transformer, then its output folded into a sentence update (B, N, D)."""
        B = batch_size
        words = self.drop_path_add(
            words, self.word_attn(self._word_norm(self.word_norm1, words, B)))
        words = self.drop_path_add(
            words, self.word_mlp(self._word_norm(self.word_norm2, words, B)))
        return words, self.word_to_sentence(words, B)


class WordAggregation(nn.Module):
    """Merges the words of each 2x2 group of sentences (8x8 words) into 4x4 words of the
    next stage: LayerNorm, then a stride-2 3x3 convolution. An odd sentence grid is
    zero-padded at bottom/right (after the norm), as the official code does."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.norm = LayerNorm(in_dim)
        self.conv = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)

    def forward(self, words, grid):
        """words: (B*H*W, 16, c) -> (B*ceil(H/2)*ceil(W/2), 16, c_out)."""
        (H, W), w, c = grid, WORDS_PER_SIDE, words.shape[-1]
        x = self.norm(words).reshape(-1, H, W, w, w, c)
        x = F.pad(x, (0, 0, 0, 0, 0, 0, 0, W % 2, 0, H % 2))
        Ho, Wo = x.shape[1] // 2, x.shape[2] // 2
        # each merged sentence: a (2w, 2w) word map of its 2x2 sentences, row-major, laid out
        # channels-last: the copy moves whole words, and the convolution's channels-last
        # output is already the (T, 16, c_out) words, with no copy before the next norm
        x = x.reshape(-1, Ho, 2, Wo, 2, w, w, c).permute(0, 1, 3, 2, 5, 4, 6, 7)
        x = self.conv(x.reshape(-1, 2 * w, 2 * w, c).permute(0, 3, 1, 2))
        return x.flatten(2).transpose(1, 2)


class SentenceAggregation(nn.Module):
    """LayerNorm, then a stride-2 3x3 convolution over the sentence grid."""

    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.norm = LayerNorm(in_dim)
        self.conv = nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1)

    def forward(self, sentences, grid):
        """sentences: (B, H*W, D) -> (B, ceil(H/2)*ceil(W/2), D_out), new grid."""
        B, _, D = sentences.shape
        x = self.norm(sentences).transpose(1, 2).reshape(B, D, *grid)
        x = self.conv(x)
        return x.flatten(2).transpose(1, 2), tuple(x.shape[-2:])


class Stem(nn.Module):
    """Conv stem: 4x4 words of dim c at stride 2 per sentence of dim D at stride 8.

    A shared stride-2 conv (2c), then a word branch (3x3 conv to c, unfolded into 4x4 words)
    and a sentence branch (two stride-2 convs, 4c and 8c, and a 3x3 conv to D); every conv
    is followed by a norm and ReLU.
    """

    def __init__(self, in_channels, word_dim, sentence_dim, norm_cfg):
        super().__init__()
        c = word_dim

        def conv(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1), build_norm_layer(norm_cfg, cout)[1],
                    nn.ReLU(inplace=True)]

        self.conv = nn.Sequential(*conv(in_channels, 2 * c, 2))
        self.word_conv = nn.Sequential(*conv(2 * c, c, 1))
        self.sentence_conv = nn.Sequential(*conv(2 * c, 4 * c, 2), *conv(4 * c, 8 * c, 2),
                                           *conv(8 * c, sentence_dim, 1))

    def forward(self, x):
        """x: (B, C, 8H, 8W) -> words (B*H*W, 16, c), sentences (B, H*W, D), grid (H, W)."""
        # channels-last, the sentence branch ends in (B, H*W, D) order, which the blocks'
        # norms read without a copy, and the words are cut out of the map a word at a time
        x = self.conv(x.contiguous(memory_format=torch.channels_last))
        words = self.word_conv(x)
        B, c, H2, W2 = words.shape
        w = WORDS_PER_SIDE
        H, W = H2 // w, W2 // w
        words = words.reshape(B, c, H, w, W, w).permute(0, 2, 4, 3, 5, 1)
        sentences = self.sentence_conv(x)
        return (words.reshape(B * H * W, w * w, c), sentences.flatten(2).transpose(1, 2),
                (H, W))


class PyramidTNTStage(nn.Module):
    """Aggregation from the previous stage (none in the first), then the blocks, which share
    one learned attention bias stored for the pretraining grid.

    The bias (the official ``relative_pos``) is resized bicubically on its query and key grids
    to the current ones; without gradients the last resized bias is kept for the next input of
    the same size (one entry: a detector sees many sizes, and each costs memory).

    Args:
        depth (int): Blocks.
        in_dims (tuple | None): (word, sentence) dims of the previous stage; None for the
            first stage (no aggregation).
        word_dim, sentence_dim, word_heads, sentence_heads, sr_ratio: as
            :class:`PyramidTNTBlock`.
        bias_grid (tuple): The sentence grid (H, W) the attention bias is stored for.
        mlp_ratio, qkv_bias, drop, attn_drop, with_se: as :class:`PyramidTNTBlock`.
        drop_paths (list[float]): Stochastic depth of each block.
        with_attn_bias (bool): Whether the stage has the learned bias.
        with_cp (bool | str): Activation checkpointing while training, as
            :class:`PyramidTNT`.
    """

    def __init__(self, depth, in_dims, word_dim, sentence_dim, word_heads, sentence_heads,
                 sr_ratio, bias_grid, mlp_ratio, qkv_bias, drop, attn_drop, drop_paths,
                 with_se, with_attn_bias, with_cp):
        super().__init__()
        self.sr_ratio = sr_ratio
        self.with_cp = with_cp
        if in_dims is not None:
            self.word_aggregation = WordAggregation(in_dims[0], word_dim)
            self.sentence_aggregation = SentenceAggregation(in_dims[1], sentence_dim)
        # the official layout: words only in the first block, and the second of a deep stage
        self.blocks = nn.ModuleList(
            PyramidTNTBlock(word_dim if j == 0 or (j == 1 and depth > 6) else 0, sentence_dim,
                            word_heads, sentence_heads, sr_ratio, mlp_ratio, qkv_bias, drop,
                            attn_drop, drop_paths[j], with_se) for j in range(depth))
        self.bias_grid = tuple(bias_grid)
        self.attn_bias = nn.Parameter(torch.zeros(
            1, sentence_heads, math.prod(bias_grid), math.prod(self.key_grid(bias_grid)))) \
            if with_attn_bias else None
        self._bias_cache = None

    def key_grid(self, grid):
        return grid[0] // self.sr_ratio, grid[1] // self.sr_ratio

    def resized_bias(self, grid):
        if self.attn_bias is None:
            return None
        bias = self.attn_bias
        args = (self.bias_grid, self.key_grid(self.bias_grid), grid, self.key_grid(grid))
        if torch.is_grad_enabled() and bias.requires_grad:
            return resize_attn_bias(bias, *args)
        key = (grid, bias._version, bias.device, bias.dtype)
        if self._bias_cache is None or self._bias_cache[0] != key:
            self._bias_cache = None  # release the old one before making the new one
            self._bias_cache = (key, resize_attn_bias(bias, *args).detach())
        return self._bias_cache[1]

    def forward(self, words, sentences, grid):
        if hasattr(self, 'word_aggregation'):
            words = self.word_aggregation(words, grid)
            sentences, grid = self.sentence_aggregation(sentences, grid)
        bias = self.resized_bias(grid)
        checkpointing = self.with_cp and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            if checkpointing and self.with_cp != 'words':
                words, sentences = cp.checkpoint(block, words, sentences, grid, bias,
                                                 use_reentrant=False)
            else:
                words, sentences = block(words, sentences, grid, bias, bool(checkpointing))
        return words, sentences, grid


@MODELS.register_module()
class PyramidTNT(FreezeMixin, BaseModule):
    """PyramidTNT backbone for any input size.

    Images are zero-padded at bottom/right to a multiple of 8. The sentence position embedding
    and every stage's attention bias are stored for the ``img_size`` grid and resized
    bicubically to the current grids at forward time (the bias on both its query and key grids).

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'medium'``, ``'base'`` (or ``'ti'``,
            ``'s'``, ``'m'``, ``'b'``), or a dict with per-stage lists ``depths, word_dims,
            sentence_dims, word_heads, sentence_heads``. Defaults to ``'small'``.
        img_size (int | tuple | None): Pretraining size that fixes the stored position and
            bias grids. Defaults to None: the arch's (192 for tiny, else 256).
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages (0-3) whose sentence maps are returned, at
            strides 8, 16, 32, 64. Defaults to (0, 1, 2, 3).
        word_out_indices (Sequence[int]): Stages whose word maps are returned before the
            sentence maps: the 4x4 words of each sentence laid out as a map of dim c at
            strides 2, 4, 8, 16. Defaults to ().
        out_type (str): ``'featmap'`` ((B, C, H, W) per index) or ``'avg_featmap'`` ((B, C)
            per index: the normalised tokens averaged, the official classifier's feature).
            Defaults to ``'featmap'``.
        mlp_ratio (float): Defaults to 4.
        qkv_bias (bool): Defaults to False.
        drop_rate (float): Dropout after projections and on the position embedding.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly over all blocks.
            Defaults to 0.
        with_se (bool): The official optional SE in every block. Defaults to False.
        with_attn_bias (bool): Keep the learned attention bias. False drops it (and the
            memory it costs at large inputs, see the README); its checkpoint values are
            then ignored. Defaults to True.
        norm_cfg (dict): Norm of the conv stem. Defaults to ``dict(type='BN')``.
        with_cp (bool | str): Activation checkpointing while training: True recomputes each
            whole block in backward; ``'words'`` only the word transformers and their folds
            into the sentences (the first blocks of each stage), whose 16 words per sentence
            hold most of the activations at the fine stages. Defaults to False.
        frozen_stages (int): -1 freezes nothing, 0 the stem and position embeddings, k > 0
            also stages 0..k-1 (with their aggregations and output norms). Defaults to -1.
        norm_eval (bool): Keep the stem's BatchNorm layers in eval mode while training.
        init_cfg (dict | list | None): ``dict(type='Pretrained', checkpoint=PATH_OR_URL)``
            (alone or in a list) loads an official PyramidTNT checkpoint or one of ours (also a
            classifier's ``backbone.`` weights); ``ema=False`` in it takes a training
            checkpoint's plain weights instead of its EMA weights.
    """
    arch_zoo = {
        **dict.fromkeys(['ti', 'tiny'], _arch([2, 6, 3, 2], 5, 80, 1, 2, 192)),
        **dict.fromkeys(['s', 'small'], _arch([2, 8, 4, 2], 8, 128, 2, 4, 256)),
        **dict.fromkeys(['m', 'medium'], _arch([2, 8, 6, 2], 12, 192, 2, 4, 256)),
        **dict.fromkeys(['b', 'base'], _arch([2, 10, 6, 2], 16, 256, 2, 4, 256)),
    }
    out_types = ('featmap', 'avg_featmap')

    def __init__(self, arch='small', img_size=None, in_channels=3, out_indices=(0, 1, 2, 3),
                 word_out_indices=(), out_type='featmap', mlp_ratio=4., qkv_bias=False,
                 drop_rate=0., attn_drop_rate=0., drop_path_rate=0., with_se=False,
                 with_attn_bias=True, norm_cfg=dict(type='BN'), with_cp=False,
                 frozen_stages=-1, norm_eval=False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        s = self._parse_arch(arch)
        if out_type not in self.out_types:
            raise ValueError(f'out_type must be one of {self.out_types}, got {out_type!r}')
        self.out_indices = self._parse_indices(out_indices, 'out_indices')
        self.word_out_indices = self._parse_indices(word_out_indices, 'word_out_indices')
        if not self.out_indices and not self.word_out_indices:
            raise ValueError('out_indices and word_out_indices are both empty: nothing to output')
        if with_cp not in (False, True, 'words'):
            raise ValueError(f"with_cp must be False, True or 'words', got {with_cp!r}")
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f'frozen_stages must be in [-1, 4], got {frozen_stages}')
        img_size = s.pop('img_size') if img_size is None else img_size
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        if img_size[0] % 64 or img_size[1] % 64:
            raise ValueError(f'img_size {img_size} must be a multiple of 64 (the last stage\'s '
                             f'stride), as the official training sizes are')
        self.arch_settings = s
        self.depths = s['depths']
        self.word_dims, self.sentence_dims = s['word_dims'], s['sentence_dims']
        self.in_channels = in_channels
        self.out_type = out_type
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.pos_grid = (img_size[0] // STEM_STRIDE, img_size[1] // STEM_STRIDE)

        self.stem = Stem(in_channels, self.word_dims[0], self.sentence_dims[0], norm_cfg)
        self.word_pos = nn.Parameter(torch.zeros(1, NUM_WORDS, self.word_dims[0]))
        self.sentence_pos = nn.Parameter(
            torch.zeros(1, self.pos_grid[0] * self.pos_grid[1], self.sentence_dims[0]))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(self.depths)).tolist()
        self.stages = nn.ModuleList()
        for i, depth in enumerate(self.depths):
            first = sum(self.depths[:i])
            grid = (self.pos_grid[0] >> i, self.pos_grid[1] >> i)
            stage = PyramidTNTStage(
                depth, None if i == 0 else (self.word_dims[i - 1], self.sentence_dims[i - 1]),
                self.word_dims[i], self.sentence_dims[i], s['word_heads'][i],
                s['sentence_heads'][i], SR_RATIOS[i], grid, mlp_ratio, qkv_bias, drop_rate,
                attn_drop_rate, dpr[first:first + depth], with_se, with_attn_bias, with_cp)
            self.stages.append(stage)
        # one norm per output (the last stage's is the official final norm)
        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm(self.sentence_dims[i]))
        for i in self.word_out_indices:
            self.add_module(f'word_norm{i}', LayerNorm(self.word_dims[i]))
        self._freeze_stages()

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown PyramidTNT arch {arch!r}; choose from '
                                 f'{sorted(self.arch_zoo)} or give a dict with keys {ARCH_KEYS}')
            return dict(self.arch_zoo[arch.lower()])
        if not isinstance(arch, dict) or not set(ARCH_KEYS) <= set(arch) \
                or not set(arch) <= set(ARCH_KEYS) | {'img_size'} \
                or any(len(arch[k]) != 4 for k in ARCH_KEYS):
            raise ValueError(f'a custom PyramidTNT arch must be a dict with the keys {ARCH_KEYS} '
                             f'(4 values each, one per stage) and optionally img_size, '
                             f'got {arch!r}')
        return dict(dict(img_size=256), **arch)

    @staticmethod
    def _parse_indices(indices, name):
        indices = (indices,) if isinstance(indices, int) else tuple(indices)
        out = tuple(i % 4 for i in indices if -4 <= i < 4)
        if len(out) != len(indices) or list(out) != sorted(set(out)):
            raise ValueError(f'{name} must name stages 0-3 (or -4..-1) in increasing order, '
                             f'got {indices}')
        return out

    # ---------------------------------------------------------------- weights
    def init_weights(self):
        from ...checkpoint import init_from_pretrained  # imports this package's layers
        if init_from_pretrained(self, lambda cfg: load_pyramid_tnt(
                self, cfg['checkpoint'], ema=cfg.get('ema', True))):
            return
        super().init_weights()
        if self.init_cfg is None:  # the official initialisation
            trunc_normal_(self.sentence_pos, std=.02)
            trunc_normal_(self.word_pos, std=.02)
            for stage in self.stages:
                if stage.attn_bias is not None:
                    nn.init.normal_(stage.attn_bias)
            self.apply(self._init_module)

    @staticmethod
    def _init_module(m):
        # the official code also gives its convolutions a fan-out normal init
        if not init_linear_and_norm(m) and isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1]
                                                          * m.out_channels // m.groups)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def no_weight_decay(self):
        """Parameter names that get no weight decay (besides norms and biases), as the
        official code: the position embeddings (the attention biases are decayed)."""
        return {'sentence_pos', 'word_pos'}

    def get_layer_depth(self, param_name, prefix=''):
        """Layer id for layer-wise lr decay: (layer_id, num_blocks + 2).

        The stem and position embeddings are layer 0, block k (counted over all stages) is
        layer k + 1, a stage's aggregations and attention bias go with its first block, the
        output norms are layer ``num_blocks + 1``.
        """
        name = param_name[len(prefix):] if prefix and param_name.startswith(prefix) \
            else param_name
        num_layers = sum(self.depths) + 2
        parts = name.split('.')
        if parts[0] in ('stem', 'word_pos', 'sentence_pos'):
            return 0, num_layers
        if parts[0] == 'stages':
            i = int(parts[1])
            j = int(parts[3]) if parts[2] == 'blocks' else 0
            return sum(self.depths[:i]) + j + 1, num_layers
        return num_layers - 1, num_layers

    # ---------------------------------------------------------------- train mode
    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        modules = [self.stem] + list(self.stages[:self.frozen_stages])
        modules += [getattr(self, f'{kind}{i}') for i in range(self.frozen_stages)
                    for kind in ('norm', 'word_norm') if hasattr(self, f'{kind}{i}')]
        for p in (self.word_pos, self.sentence_pos):
            p.requires_grad = False
        for m in modules:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    # ---------------------------------------------------------------- forward
    def _check_input(self, x):
        check_image_batch(x, self.in_channels, 'PyramidTNT')
        if min(x.shape[-2:]) < 4 * STEM_STRIDE:
            raise ValueError(f'PyramidTNT needs inputs of at least {4 * STEM_STRIDE} pixels '
                             f'on each side, got {tuple(x.shape[-2:])}')

    def forward(self, x):
        """x: (B, C, H, W) float. Returns the word maps of ``word_out_indices``, then the
        sentence maps of ``out_indices`` (see the class docstring)."""
        self._check_input(x)
        H, W = x.shape[-2:]
        x = F.pad(x, (0, -W % STEM_STRIDE, 0, -H % STEM_STRIDE))
        words, sentences, grid = self.stem(x)
        words = words + self.word_pos
        sentences = sentences + self.pos_drop(
            resize_pos_embed(self.sentence_pos, self.pos_grid, grid, num_extra_tokens=0))
        B = sentences.shape[0]
        word_outs, outs = [], []
        for i, stage in enumerate(self.stages[:max(self.out_indices + self.word_out_indices)
                                              + 1]):
            words, sentences, grid = stage(words, sentences, grid)
            if i in self.word_out_indices:
                w, c = WORDS_PER_SIDE, words.shape[-1]
                x = getattr(self, f'word_norm{i}')(words).reshape(B, *grid, w, w, c)
                x = x.permute(0, 5, 1, 3, 2, 4).reshape(B, c, grid[0] * w, grid[1] * w)
                word_outs.append(self._pool(x))
            if i in self.out_indices:
                x = getattr(self, f'norm{i}')(sentences)
                outs.append(self._pool(x.transpose(1, 2).reshape(B, -1, *grid)))
        return tuple(word_outs + outs)

    def _pool(self, featmap):
        return featmap.mean(dim=(2, 3)) if self.out_type == 'avg_featmap' else featmap


# ---------------------------------------------------------------- checkpoints
# official huawei-noah name -> ours (the longest dotted prefix found is replaced)
OFFICIAL_TO_OURS = {
    'patch_embed.common_conv': 'stem.conv', 'patch_embed.inner_convs': 'stem.word_conv',
    'patch_embed.outer_convs': 'stem.sentence_conv', 'outer_pos': 'sentence_pos',
    'inner_pos': 'word_pos', 'norm': 'norm3', 'head': 'head.fc',
}
OFFICIAL_BLOCK_TO_OURS = {
    'inner_norm1': 'word_norm1', 'inner_attn': 'word_attn', 'inner_norm2': 'word_norm2',
    'inner_mlp': 'word_mlp', 'proj_norm1': 'word_to_sentence.norm1',
    'proj': 'word_to_sentence.fc', 'proj_norm2': 'word_to_sentence.norm2',
    'outer_norm1': 'sentence_norm1', 'outer_attn': 'sentence_attn',
    'outer_attn.linear': 'sentence_attn.reduce', 'outer_attn.norm': 'sentence_attn.reduce_norm',
    'outer_norm2': 'sentence_norm2', 'outer_mlp': 'sentence_mlp', 'se_layer.fc.0': 'se.norm',
    'se_layer.fc.1': 'se.fc1', 'se_layer.fc.3': 'se.fc2',
}


def convert_pyramid_tnt(state_dict):
    """Official PyramidTNT keys -> ours; a state dict already in our names passes unchanged.

    The word attention's separate ``q`` and ``kv`` projections become one ``qkv``; a stage's
    aggregations (official ``word_merges.{i-1}``/``sentence_merges.{i-1}``) live in stage i;
    the classifier ``head`` becomes ``head.fc``.
    """
    from ...checkpoint import _rename  # longest dotted prefix; imports this package's layers
    if 'stem.conv.0.weight' in state_dict:
        return OrderedDict(state_dict)
    if 'patch_embed.common_conv.0.weight' not in state_dict:
        raise ValueError('not a PyramidTNT checkpoint: neither official keys '
                         '("patch_embed.common_conv.0.weight") nor ours ("stem.conv.0.weight"); '
                         f'first keys: {sorted(state_dict)[:5]}')
    out = OrderedDict()
    for k, v in state_dict.items():
        parts = k.split('.')
        if parts[0] in ('word_merges', 'sentence_merges'):
            kind = 'word' if parts[0] == 'word_merges' else 'sentence'
            rest = '.'.join(parts[2:]).replace('conv.0.', 'conv.')
            k = f'stages.{int(parts[1]) + 1}.{kind}_aggregation.{rest}'
        elif parts[0] == 'stages' and parts[2] == 'relative_pos':
            k = f'stages.{parts[1]}.attn_bias'
        elif parts[0] == 'stages':
            rest = '.'.join(parts[4:])
            if rest.startswith('inner_attn.kv.'):
                continue  # folded into qkv below
            if rest.startswith('inner_attn.q.'):
                v = torch.cat([v, state_dict[k.replace('.q.', '.kv.')]], dim=0)
                rest = rest.replace('.q.', '.qkv.')
            k = '.'.join(parts[:4] + [_rename(rest, OFFICIAL_BLOCK_TO_OURS)])
        else:
            k = _rename(k, OFFICIAL_TO_OURS)
        out[k] = v
    return out


def load_pyramid_tnt(model, filename, ema=True, logger='current'):
    """Loads an official or our PyramidTNT checkpoint (file or URL, EMA weights preferred: see
    :mod:`tnt_backbone.engine.weights`) into ``model``.

    Resizes the position embedding and attention biases of another pretraining grid, drops
    the classifier head (and attention biases when the model has none), raises on shape
    mismatches and reports missing and unexpected keys.
    """
    from ...checkpoint import load_converted, square_grid, unwrap_state_dict  # imports layers
    from ...engine import load_state_dict_from
    sd = convert_pyramid_tnt(unwrap_state_dict(load_state_dict_from(filename, ema=ema,
                                                                    logger=logger)))
    own = model.state_dict()
    sd = {k: v for k, v in sd.items() if k in own or not k.startswith('head.')}
    if model.stages[0].attn_bias is None:
        sd = {k: v for k, v in sd.items() if not k.endswith('.attn_bias')}
    src_pos_grid = square_grid(sd['sentence_pos'].shape[1], f'{filename}: sentence_pos')
    if src_pos_grid != model.pos_grid:
        print_log(f'resizing the position embedding and attention biases of {filename} from '
                  f'a {src_pos_grid} to a {model.pos_grid} grid', logger=logger)
        sd['sentence_pos'] = resize_pos_embed(sd['sentence_pos'], src_pos_grid, model.pos_grid,
                                              num_extra_tokens=0)
        for i, stage in enumerate(model.stages):
            key = f'stages.{i}.attn_bias'
            if key in sd:
                src = (src_pos_grid[0] >> i, src_pos_grid[1] >> i)
                sd[key] = resize_attn_bias(sd[key], src, stage.key_grid(src), stage.bias_grid,
                                           stage.key_grid(stage.bias_grid))
    what = f'this PyramidTNT (sentence dims {model.sentence_dims}, depths {model.depths})'
    print_log(f'loading PyramidTNT checkpoint {filename}', logger=logger)
    # output norms other than the final one are new modules, not missing weights
    return load_converted(model, sd, filename, what, ('norm', 'word_norm'), logger)
