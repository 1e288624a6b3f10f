"""Four-level feature pyramid (strides 4, 8, 16, 32) from single-stride TNT features."""
import torch.nn as nn
from mmcv.cnn import build_norm_layer


class SimplePyramid(nn.Module):
    """Rescales four stride-16 maps to strides 4, 8, 16 and 32.

    As in the paper's detection setting (and mmseg's ``Feature2Pyramid``): x4 by
    ConvT-Norm-GELU-ConvT, x2 by ConvT, x1 identity, x1/2 by 2x2 max-pooling (ceil mode, so an
    odd grid keeps its last row/column). With ``stride4_from_words`` the stride-4 level is built
    instead from the visual words (see :class:`WordMap`) and no x4 upsampler is made.

    Args:
        in_channels (int): Channels D of the stride-16 maps.
        out_channels (int | None): Channels of every level; None keeps D (no projection).
        norm_cfg (dict): Norm between the two x4 deconvolutions. Defaults to BN.
        stride4_from_words (bool): Whether level 0 comes from words. Defaults to False.
    """

    def __init__(self, in_channels, out_channels=None, norm_cfg=dict(type='BN'),
                 stride4_from_words=False):
        super().__init__()
        D = in_channels
        self.stride4_from_words = stride4_from_words
        up4 = None if stride4_from_words else nn.Sequential(
            nn.ConvTranspose2d(D, D, 2, 2), build_norm_layer(norm_cfg, D)[1], nn.GELU(),
            nn.ConvTranspose2d(D, D, 2, 2))
        self.rescales = nn.ModuleList([
            up4 or nn.Identity(),
            nn.ConvTranspose2d(D, D, 2, 2),
            nn.Identity(),
            nn.MaxPool2d(2, 2, ceil_mode=True),
        ])
        self.projections = nn.ModuleList([
            nn.Identity() if out_channels is None or (i == 0 and stride4_from_words)
            else nn.Conv2d(D, out_channels, 1) for i in range(4)])

    def forward(self, feats):
        """feats: four (B, D, Hp, Wp) maps (the first may already be a stride-4 word map).

        Returns four maps: (B, C, 4Hp, 4Wp), (B, C, 2Hp, 2Wp), (B, C, Hp, Wp),
        (B, C, ceil(Hp/2), ceil(Wp/2)).
        """
        return tuple(proj(rescale(f)) for f, rescale, proj
                     in zip(feats, self.rescales, self.projections))


class WordMap(nn.Module):
    """Lays the visual words out as a stride-4 feature map and projects them to C channels.

    The n = w*w words of each 16x16 patch are the w x w cells of that patch, so the words of an
    (Hp, Wp) patch grid form a (w*Hp, w*Wp) map of word dimension c. LayerNorm, then a 1x1 conv
    to ``out_channels``.

    Args:
        inner_dim (int): Word dimension c.
        out_channels (int): Output channels C.
        words_per_side (int): w. Defaults to 4.
    """

    def __init__(self, inner_dim, out_channels, words_per_side=4):
        super().__init__()
        self.w = words_per_side
        self.norm = nn.LayerNorm(inner_dim)
        self.proj = nn.Conv2d(inner_dim, out_channels, 1)

    def forward(self, words, hw_shape):
        """words: (B*Hp*Wp, w*w, c) -> (B, C, w*Hp, w*Wp)."""
        (Hp, Wp), w = hw_shape, self.w
        c = words.shape[-1]
        x = self.norm(words).reshape(-1, Hp, Wp, w, w, c).permute(0, 5, 1, 3, 2, 4)
        return self.proj(x.reshape(-1, c, Hp * w, Wp * w))
