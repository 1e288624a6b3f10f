"""Multi-head self-attention of the sentence and word layers."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from tnt_backbone.ops import word_attention


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
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
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
            qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            out = self._window_attend(q, k, v, hw_shape) if self.window_size > 0 \
                else self._sdpa(q, k, v)
        else:
            bias = self.qkv.bias
            q = F.linear(x[:, :num_queries], self.qkv.weight[:C],
                         None if bias is None else bias[:C])
            kv = F.linear(x, self.qkv.weight[C:], None if bias is None else bias[C:])
            q = q.reshape(B, num_queries, self.num_heads, -1).transpose(1, 2)
            k, v = kv.reshape(B, N, 2, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
            out = self._sdpa(q, k, v)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, -1, C)))

    def _sdpa(self, q, k, v, mask=None):
        """(B, heads, Nq, hd) x (B, heads, Nk, hd) -> (B, heads, Nq, hd)."""
        drop = self.attn_drop if self.training else 0.
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)

    def _window_attend(self, q, k, v, hw_shape):
        """Windowed attention over the grid tokens; every window also sees the class token.

        The class token attends to all tokens. Windows are padded at bottom/right; padded keys
        are masked out, so a window covering the whole grid is exactly global attention.
        """
        B, h, _, hd = q.shape
        H, W = hw_shape
        ws = self.window_size
        pad_h, pad_w = -H % ws, -W % ws
        Hw, Ww = (H + pad_h) // ws, (W + pad_w) // ws
        num_windows = Hw * Ww

        def partition(t):  # (B, h, 1+H*W, hd) -> (B*num_windows, h, ws*ws, hd)
            t = F.pad(t[:, :, 1:].reshape(B, h, H, W, hd), (0, 0, 0, pad_w, 0, pad_h))
            t = t.reshape(B, h, Hw, ws, Ww, ws, hd).permute(0, 2, 4, 1, 3, 5, 6)
            return t.reshape(B * num_windows, h, ws * ws, hd)

        def with_cls(t):
            cls = t[:, :, :1].repeat_interleave(num_windows, dim=0)
            return torch.cat([cls, partition(t)], dim=2)

        mask = None
        if pad_h or pad_w:
            valid = torch.zeros(Hw * ws, Ww * ws, dtype=torch.bool, device=q.device)
            valid[:H, :W] = True
            valid = valid.reshape(Hw, ws, Ww, ws).permute(0, 2, 1, 3).reshape(
                num_windows, 1, 1, ws * ws)
            mask = torch.cat([valid.new_ones(num_windows, 1, 1, 1), valid], dim=-1)
            mask = mask.repeat(B, 1, 1, 1)
        grid_out = self._sdpa(partition(q), with_cls(k), with_cls(v), mask)
        grid_out = grid_out.reshape(B, Hw, Ww, h, ws, ws, hd).permute(0, 3, 1, 4, 2, 5, 6)
        grid_out = grid_out.reshape(B, h, Hw * ws, Ww * ws, hd)[:, :, :H, :W]
        cls_out = self._sdpa(q[:, :, :1], k, v)
        return torch.cat([cls_out, grid_out.reshape(B, h, H * W, hd)], dim=2)


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
