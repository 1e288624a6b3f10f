"""A feature pyramid from the single-stride maps of a plain backbone (ViTDet style)."""
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from ...registry import MODELS

SCALES = (4, 2, 1, 0.5, 0.25)


@MODELS.register_module()
class SimpleFeaturePyramid(BaseModule):
    """Rescales stride-s sentence maps to a pyramid of strides s/4 ... 4s, as ViTDet does.

    Each level rescales a sentence map: x4 by ConvT-Norm-GELU-ConvT, x2 by ConvT, x1 as it is,
    x0.5 and x0.25 by max-pooling (ceil mode: an odd grid keeps its last row/column). With
    ``word_channels``, the x4 level is instead the backbone's word map (already at stride s/4),
    projected by a 1x1 conv: TNT's own stride-4 features, no upsampling.

    Which map feeds a level: with one sentence map, every level (ViTDet); with one per
    sentence-built level, the i-th map feeds the i-th such level (the TNT paper and mmseg's
    ``Feature2Pyramid``: blocks 3/6/9/12 at strides 4/8/16/32).

    Args:
        in_channels (int): Channels D of the sentence maps.
        scales (Sequence[float]): Rescale factors, decreasing, from (4, 2, 1, 0.5, 0.25).
            Defaults to (4, 2, 1, 0.5): strides 4, 8, 16, 32 from stride 16.
        out_channels (Sequence[int] | None): Channels of each level. Defaults to None: ViTDet's
            D/4 at x4, D/2 at x2, D at the others (the fine levels are the large ones: narrow
            there saves most memory). A level whose rescale ends with other channels than asked
            gets a 1x1 conv.
        word_channels (int | None): Channels c of a word map that comes first in the inputs
            and makes the x4 level. Defaults to None (the x4 level upsamples sentences).
        norm_cfg (dict): Norm inside the x4 upsampler. Defaults to LayerNorm over channels
            (``tnt_backbone.LN2d``), which does not depend on the batch size;
            ``dict(type='SyncBN')`` is the mmseg ``Feature2Pyramid`` choice.
        init_cfg (dict | list | None): Defaults to None.
    """

    def __init__(self, in_channels, scales=(4, 2, 1, 0.5), out_channels=None,
                 word_channels=None, norm_cfg=dict(type='tnt_backbone.LN2d'), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        scales = tuple(scales)
        if not scales or any(s not in SCALES for s in scales) \
                or list(scales) != sorted(set(scales), reverse=True):
            raise ValueError(f'scales must be decreasing values from {SCALES}, got {scales}')
        if word_channels is not None and scales[0] != 4:
            raise ValueError(f'word_channels makes the x4 level, but scales {scales} has none')
        D = in_channels
        default_channels = {4: D // 4, 2: D // 2}
        out_channels = [default_channels.get(s, D) for s in scales] if out_channels is None \
            else list(out_channels)
        if len(out_channels) != len(scales):
            raise ValueError(f'out_channels {out_channels} must give one width per scale '
                             f'{scales}')
        self.scales = scales
        self.out_channels = out_channels
        self.from_words = word_channels is not None
        self.levels = nn.ModuleList(
            self._level(scale, D, C, word_channels, norm_cfg)
            for scale, C in zip(scales, out_channels))

    @staticmethod
    def _level(scale, D, C, word_channels, norm_cfg):
        if scale == 4 and word_channels is not None:
            return nn.Conv2d(word_channels, C, 1)
        if scale == 4:
            mid = min(D, 2 * C)  # ViTDet: D -> D/2 -> D/4
            return nn.Sequential(nn.ConvTranspose2d(D, mid, 2, 2),
                                 build_norm_layer(norm_cfg, mid)[1], nn.GELU(),
                                 nn.ConvTranspose2d(mid, C, 2, 2))
        if scale == 2:
            return nn.ConvTranspose2d(D, C, 2, 2)
        layers = [] if scale == 1 else [nn.MaxPool2d(int(1 / scale), ceil_mode=True)]
        if C != D:
            layers.append(nn.Conv2d(D, C, 1))
        return nn.Sequential(*layers)

    def forward(self, inputs):
        """inputs: [word map (B, c, 4Hp, 4Wp),] then 1 or one-per-level (B, D, Hp, Wp) maps.

        Returns one (B, C_i, Hp * scale_i, Wp * scale_i) map per scale (rounded up).
        """
        inputs = list(inputs)
        feeds = [inputs.pop(0)] if self.from_words else []
        num_sentence_levels = len(self.scales) - len(feeds)
        if len(inputs) == 1:
            feeds += inputs * num_sentence_levels
        elif len(inputs) == num_sentence_levels:
            feeds += inputs
        else:
            raise ValueError(
                f'SimpleFeaturePyramid with scales {self.scales}'
                f'{" (x4 from the word map)" if self.from_words else ""} takes 1 or '
                f'{num_sentence_levels} sentence maps, got {len(inputs)}: set the backbone\'s '
                f'out_indices to match')
        return tuple(level(x) for level, x in zip(self.levels, feeds))
