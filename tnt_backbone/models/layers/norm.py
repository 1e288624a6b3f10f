"""The backbones' LayerNorm, and LayerNorm over the channels of (B, C, H, W) maps."""
import torch.nn as nn
import torch.nn.functional as F

from tnt_backbone.ops import layer_norm

from ...registry import MODELS


class LayerNorm(nn.LayerNorm):
    """:class:`torch.nn.LayerNorm` with this package's CPU backward in training
    (:func:`tnt_backbone.ops.layer_norm`); the same parameters and state-dict keys."""

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


@MODELS.register_module('LN2d')
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, H, W) map, at every position.

    A batch-size-independent norm for convolutional necks (ViTDet uses it in its simple feature
    pyramid): unlike BatchNorm it behaves the same at 1 or 2 images per GPU and needs no
    synchronisation. In configs: ``norm_cfg=dict(type='tnt_backbone.LN2d')``.
    """

    def forward(self, x):
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)
