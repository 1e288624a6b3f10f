"""Trans2Seg decode head (Xie et al., 2021), the decoder of TNT's ADE20K result.

Learnable class queries attend to the stride-16 backbone features through a small transformer
decoder; the last layer's cross-attention maps (one per class and head) are stacked on the
features and decoded class by class into one mask logit per pixel by a shared small CNN.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule, build_activation_layer, build_norm_layer
from mmengine.model.weight_init import trunc_normal_
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from ...registry import MODELS


class ClassQueryLayer(nn.Module):
    """Pre-norm transformer decoder layer whose queries are classes.

    Self-attention among the queries, cross-attention from the queries to the image tokens
    (its per-head attention maps are returned), then an MLP.

    Args:
        embed_dims (int): Query and token width C.
        num_heads (int): Attention heads h.
        mlp_ratio (float): MLP hidden width over C.
        dropout (float): Dropout on attention outputs and in the MLP.
        maps_only (bool): The last layer: only its cross-attention maps are read, so it has no
            value or output projection and no MLP (parameters that nothing would train, which
            distributed training rejects). Defaults to False.
    """

    def __init__(self, embed_dims, num_heads, mlp_ratio, dropout, maps_only=False):
        super().__init__()
        self.num_heads = num_heads
        self.maps_only = maps_only
        self.norm_self = nn.LayerNorm(embed_dims)
        self.self_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                               batch_first=True)
        self.norm_cross = nn.LayerNorm(embed_dims)
        if maps_only:
            self.cross_qk = nn.Linear(embed_dims, 2 * embed_dims)
            return
        self.cross_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout,
                                                batch_first=True)
        self.norm_mlp = nn.LayerNorm(embed_dims)
        hidden = int(embed_dims * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(embed_dims, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, embed_dims), nn.Dropout(dropout))

    def cross_attention_maps(self, queries, tokens):
        """queries: (B, K, C), tokens: (B, N, C) -> softmax attention maps (B, h, K, N)."""
        C, h = queries.shape[-1], self.num_heads
        w, b = self.cross_qk.weight, self.cross_qk.bias
        q = F.linear(queries, w[:C], b[:C]).unflatten(-1, (h, -1)).transpose(1, 2)
        k = F.linear(tokens, w[C:], b[C:]).unflatten(-1, (h, -1)).transpose(1, 2)
        return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(-1)

    def forward(self, queries, tokens):
        """queries: (B, K, C), tokens: (B, N, C) -> queries (B, K, C), attn (B, h, K, N).

        With ``maps_only`` the queries returned are None.
        """
        q = self.norm_self(queries)
        queries = queries + self.self_attn(q, q, q, need_weights=False)[0]
        if self.maps_only:
            return None, self.cross_attention_maps(self.norm_cross(queries), tokens)
        out, attn = self.cross_attn(self.norm_cross(queries), tokens, tokens,
                                    need_weights=True, average_attn_weights=False)
        queries = queries + out
        return queries + self.mlp(self.norm_mlp(queries)), attn


@MODELS.register_module()
class Trans2SegHead(BaseDecodeHead):
    """Class queries + attention-map CNN decoder (Trans2Seg) on one stride-16 feature map.

    Input: the ``in_index`` map (B, in_channels, Hp, Wp). It is projected to ``channels`` (C)
    and flattened into N = Hp*Wp tokens; ``num_classes`` (K) learnable queries run through
    ``num_layers`` :class:`ClassQueryLayer`. For each class k, the last layer's attention maps
    (h, Hp, Wp) are concatenated with the projected features (C, Hp, Wp) and decoded by
    ``num_convs`` 3x3 conv-norm-act layers of ``hidden_channels`` and a 1x1 conv to one
    logit; the CNN is shared by all classes. Output: logits (B, K, Hp, Wp), which mmseg
    resizes to the label / image size. Unlike the original, whose CNN also adds a stride-4
    ResNet feature, masks are decoded at stride 16 (TNT has no convolutional stride-4 stage)
    and upsampled bilinearly, as in Segmenter.

    Args:
        num_layers (int): Decoder layers. Defaults to 4.
        num_heads (int): Attention heads, i.e. attention maps per class. Defaults to 8.
        mlp_ratio (float): Decoder MLP width over ``channels``. Defaults to 3.
        attn_dropout (float): Dropout inside the decoder layers. Defaults to 0.
        hidden_channels (int): Width of the mask CNN. Defaults to 64.
        num_convs (int): 3x3 conv layers of the mask CNN (>= 1). Defaults to 2.
        **kwargs: :class:`BaseDecodeHead` arguments (``in_channels``, ``channels``,
            ``num_classes``, ``in_index``, ``norm_cfg``, ``loss_decode``...). Only a single
            input map is supported (``input_transform=None``); ``dropout_ratio`` applies to
            the CNN features before the final 1x1 conv.
    """

    def __init__(self, num_layers=4, num_heads=8, mlp_ratio=3., attn_dropout=0.,
                 hidden_channels=64, num_convs=2, **kwargs):
        super().__init__(**kwargs)
        if self.input_transform is not None:
            raise ValueError(f'Trans2SegHead decodes one stride-16 map: give an int in_index '
                             f'and in_channels, not input_transform={self.input_transform!r}')
        if self.out_channels != self.num_classes:
            raise ValueError('Trans2SegHead predicts one logit map per class; binary '
                             f'out_channels={self.out_channels} is not supported, use '
                             f'num_classes=2')
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}')
        C = self.channels
        self.input_proj = ConvModule(self.in_channels, C, 1, conv_cfg=self.conv_cfg,
                                     norm_cfg=self.norm_cfg, act_cfg=None)
        self.token_norm = nn.LayerNorm(C)
        self.class_queries = nn.Parameter(trunc_normal_(torch.empty(1, self.num_classes, C),
                                                        std=.02))
        self.layers = nn.ModuleList(
            ClassQueryLayer(C, num_heads, mlp_ratio, attn_dropout, maps_only=i == num_layers - 1)
            for i in range(num_layers))
        # conv(cat(features, attn)) == conv_f(features) + conv_a(attn): the feature half is
        # then computed once per image instead of once per class.
        self.feat_conv = nn.Conv2d(C, hidden_channels, 3, padding=1)
        self.attn_conv = nn.Conv2d(num_heads, hidden_channels, 3, padding=1, bias=False)
        self.fuse_norm = build_norm_layer(self.norm_cfg, hidden_channels)[1] \
            if self.norm_cfg else nn.Identity()
        self.fuse_act = build_activation_layer(self.act_cfg)
        self.convs = nn.Sequential(*(
            ConvModule(hidden_channels, hidden_channels, 3, padding=1, conv_cfg=self.conv_cfg,
                       norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
            for _ in range(num_convs - 1)))
        # One logit per (image, class) map: the class lives in the batch axis, not in channels.
        self.conv_seg = nn.Conv2d(hidden_channels, 1, 1)

    def forward(self, inputs):
        """inputs: multi-level features; uses (B, in_channels, Hp, Wp) -> (B, K, Hp, Wp)."""
        x = self.input_proj(self._transform_inputs(inputs))
        B, C, H, W = x.shape
        tokens = self.token_norm(x.flatten(2).transpose(1, 2))
        queries = self.class_queries.expand(B, -1, -1)
        for layer in self.layers:
            queries, attn = layer(queries, tokens)
        heads, K = attn.shape[1:3]
        # Softmax over N tokens puts a uniform map at 1/N; times N it is 1, like the features.
        attn = attn.transpose(1, 2).reshape(B * K, heads, H, W) * (H * W)
        fused = self.attn_conv(attn).view(B, K, -1, H, W) + self.feat_conv(x).unsqueeze(1)
        fused = self.fuse_act(self.fuse_norm(fused.flatten(0, 1)))
        return self.cls_seg(self.convs(fused)).view(B, K, H, W)
