"""Multi-head self-attention of the sentence and word layers."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from tnt_backbone.ops import linear, word_attention

from .linear import Linear


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection.

    The fused ``qkv`` weight is ``cat([q, k, v])`` of the reference's separate ``qk`` and ``v``
    projections (see :mod:`tnt_backbone.checkpoint`).

    Args:
        dim (int): Token dimension.
        num_heads (int): Number of heads; must divide ``dim``.
        qkv_bias (bool): Bias on the qkv projection. Defaults to False.
        attn_drop (float): Dropout on attention weights. Defaults to 0.
        proj_drop (float): Dropout after the output projection. Defaults to 0.
        window_size (int): If > 0, tokens after the first (the class token) attend
            only within non-overlapping ``window_size x window_size`` windows of their
            ``hw_shape`` grid (and to the class token), while the class token attends to every
            token. Defaults to 0 (global).
    """

    def __init__(self, dim, num_heads, qkv_bias=False, attn_drop=0., proj_drop=0.,
                 window_size=0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.window_size = window_size
        self.attn_drop = attn_drop
        self.qkv = Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, hw_shape=None, num_queries=None):
        """x: (B, N, C) -> (B, N, C).

        ``hw_shape`` is needed only for windowed attention. With ``num_queries``, only the first
        ``num_queries`` tokens query (globally) and the result is (B, num_queries, C): when
        nothing reads the other tokens' outputs, their queries, projections and attention rows
        are not computed.
        """
        B, N, C = x.shape
        if num_queries is None:
            qkv = self.qkv(x)
            out = self._window_attend(qkv, hw_shape) if self.window_size > 0 \
                else self._attend(qkv)
        else:
            bias = self.qkv.bias
            q = linear(x[:, :num_queries], self.qkv.weight[:C],
                       None if bias is None else bias[:C])
            kv = linear(x, self.qkv.weight[C:], None if bias is None else bias[C:])
            q = q.reshape(B, num_queries, self.num_heads, -1).transpose(1, 2)
            k, v = kv.reshape(B, N, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            out = self._sdpa(q, k, v).transpose(1, 2).reshape(B, num_queries, C)
        return self.proj_drop(self.proj(out))

    def _heads(self, qkv):
        """(B, N, 3C) -> q, k, v, each (B, heads, N, hd): views, no copies."""
        B, N, _ = qkv.shape
        return qkv.view(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    def _attend(self, qkv, cls_only=False):
        """Attention of every token (or the first alone) of (B, N, 3C) -> (B, N or 1, C)."""
        q, k, v = self._heads(qkv)
        out = self._sdpa(q[:, :, :1] if cls_only else q, k, v)
        return out.transpose(1, 2).flatten(2)

    def _sdpa(self, q, k, v, mask=None):
        """(B, heads, Nq, hd) x (B, heads, Nk, hd) -> (B, heads, Nq, hd)."""
        drop = self.attn_drop if self.training else 0.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)

    def _window_attend(self, qkv, hw_shape):
        """Windowed attention over the grid tokens of (B, 1 + H*W, 3C); every window also sees
        the class token, which attends to all tokens. -> (B, 1 + H*W, C).

        Windows are cut after the qkv projection by one gather, which also puts the class
        token first in every window, and put back by another: reshaping, padding and
        concatenating q, k and v apart moved each of them three to four times. Windows are
        padded at bottom/right; their padded slots are masked out as keys (they hold the class
        token's projection, so nothing undefined enters the softmax) and their outputs dropped,
        so a window covering the whole grid is exactly global attention.
        """
        B, _, C3 = qkv.shape
        H, W = hw_shape
        ws = self.window_size
        Hw, Ww = -(-H // ws), -(-W // ws)
        rows = torch.arange(Hw * ws, device=qkv.device).view(Hw, ws, 1, 1)
        cols = torch.arange(Ww * ws, device=qkv.device).view(1, 1, Ww, ws)
        valid = ((rows < H) & (cols < W)).transpose(1, 2).reshape(Hw * Ww, ws * ws)
        # token of each window slot: the class token (0) first, then the grid, row-major
        token = torch.where(valid, 1 + (rows * W + cols).transpose(1, 2).reshape_as(valid), 0)
        token = F.pad(token, (1, 0)).flatten()
        windows = qkv.index_select(1, token).view(-1, 1 + ws * ws, C3)
        mask = None
        if H % ws or W % ws:
            mask = F.pad(valid, (1, 0), value=True).repeat(B, 1)[:, None, None]
        q, k, v = self._heads(windows)
        grid_out = self._sdpa(q[:, :, 1:], k, v, mask).transpose(1, 2).reshape(B, -1, C3 // 3)
        # where each grid token's output is among the windows' slots
        slot = torch.arange(Hw * Ww * ws * ws, device=qkv.device).view(Hw, Ww, ws, ws)
        slot = slot.transpose(1, 2).reshape(Hw * ws, Ww * ws)[:H, :W].flatten()
        return torch.cat([self._attend(qkv, cls_only=True), grid_out.index_select(1, slot)], 1)


class WordAttention(Attention):
    """Attention among the words of each sentence: (T, n, c) -> (T, n, c).

    Sequences of 16 words with head dims of 6-10 are far too small for batched matmuls or SDPA
    to run efficiently; :func:`tnt_backbone.ops.word_attention` solves them in one fused
    kernel per device (C++ on CPU, Triton on CUDA) that reads the qkv projection as it is (see
    its module for where it falls back to SDPA). Parameters and arguments as
    :class:`Attention`, without windows.
    """

    def __init__(self, dim, num_heads, qkv_bias=False, attn_drop=0., proj_drop=0.):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)

    def forward(self, x, hw_shape=None, num_queries=None):
        """x: (T, n, c) -> (T, n, c). ``hw_shape`` and ``num_queries`` do not apply."""
        out = word_attention(self.qkv(x), self.num_heads, self.scale,
                             self.attn_drop if self.training else 0.)
        return self.proj_drop(self.proj(out))
