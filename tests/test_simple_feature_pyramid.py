"""SimpleFeaturePyramid: strides and channels of every level, the word-map level, its norms."""
import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.models import TNT, SimpleFeaturePyramid
from tnt_backbone.models.layers import LayerNorm2d


def ceil_div(a, b):
    return -(-a // b)


@pytest.mark.parametrize('hw', [(333, 517), (64, 96), (16, 16)])
def test_strides_and_channels_for_odd_inputs(hw):
    """TNT-Ti + pyramid: strides 4/8/16/32 (rounded up) and ViTDet's widths D/4, D/2, D, D."""
    backbone = TNT(arch='tiny').eval()
    neck = SimpleFeaturePyramid(in_channels=192).eval()
    with torch.no_grad():
        outs = neck(backbone(torch.randn(1, 3, *hw)))
    Hp, Wp = ceil_div(hw[0], 16), ceil_div(hw[1], 16)
    assert [tuple(o.shape) for o in outs] == [
        (1, 48, 4 * Hp, 4 * Wp), (1, 96, 2 * Hp, 2 * Wp), (1, 192, Hp, Wp),
        (1, 192, ceil_div(Hp, 2), ceil_div(Wp, 2))]


def test_single_input_feeds_every_level_and_stride_64():
    neck = SimpleFeaturePyramid(in_channels=32, scales=(2, 1, 0.5, 0.25),
                                out_channels=[16, 32, 32, 24]).eval()
    x = torch.randn(2, 32, 7, 9)
    outs = neck([x])
    assert [tuple(o.shape) for o in outs] == [(2, 16, 14, 18), (2, 32, 7, 9), (2, 32, 4, 5),
                                              (2, 24, 2, 3)]
    torch.testing.assert_close(outs[1], x)  # x1 at its own width: the map as it is
    # x0.5 is a ceil-mode 2x2 max-pool: computed independently by padding with -inf
    pooled = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float('-inf')), 2)
    torch.testing.assert_close(outs[2], pooled)
    # x0.25 with another width: 4x4 max-pool, then a 1x1 conv
    proj = neck.levels[3][-1]
    pooled4 = F.max_pool2d(F.pad(x, (0, 3, 0, 1), value=float('-inf')), 4)
    torch.testing.assert_close(outs[3], F.conv2d(pooled4, proj.weight, proj.bias))


def test_one_input_per_level():
    neck = SimpleFeaturePyramid(in_channels=8, scales=(1, 0.5)).eval()
    a, b = torch.randn(1, 8, 4, 6), torch.randn(1, 8, 4, 6)
    outs = neck([a, b])
    torch.testing.assert_close(outs[0], a)
    torch.testing.assert_close(outs[1], F.max_pool2d(b, 2))


def test_word_map_makes_the_stride_4_level():
    torch.manual_seed(0)
    backbone = TNT(arch='tiny', out_indices=(5, 8, 11), word_map_index=2).eval()
    neck = SimpleFeaturePyramid(in_channels=192, word_channels=12).eval()
    x = torch.randn(1, 3, 45, 77)
    with torch.no_grad():
        feats = backbone(x)
        outs = neck(feats)
    conv = neck.levels[0]
    torch.testing.assert_close(outs[0], F.conv2d(feats[0], conv.weight, conv.bias))
    assert [tuple(o.shape) for o in outs] == [(1, 48, 12, 20), (1, 96, 6, 10), (1, 192, 3, 5),
                                              (1, 192, 2, 3)]
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in neck.levels[0].modules())


def test_layer_norm_2d_normalises_channels_at_each_position():
    norm = LayerNorm2d(6)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.normal_()
    x = torch.randn(2, 6, 3, 4)
    expect = F.layer_norm(x.permute(0, 2, 3, 1), (6,), norm.weight, norm.bias)
    torch.testing.assert_close(norm(x), expect.permute(0, 3, 1, 2))
    # independent of the batch: an image's output does not depend on its neighbours
    torch.testing.assert_close(norm(x[:1]), norm(x)[:1])


def test_norm_cfg_selects_the_upsampler_norm():
    ln = SimpleFeaturePyramid(in_channels=16)
    bn = SimpleFeaturePyramid(in_channels=16, norm_cfg=dict(type='BN'))
    assert isinstance(ln.levels[0][1], LayerNorm2d)
    assert isinstance(bn.levels[0][1], torch.nn.BatchNorm2d)


def test_every_parameter_gets_a_gradient():
    backbone = TNT(arch='tiny', out_indices=(2, 5, 8, 11), word_map_index=2).train()
    neck = SimpleFeaturePyramid(in_channels=192, word_channels=12, scales=(4, 2, 1, 0.5, 0.25))
    outs = neck(backbone(torch.randn(2, 3, 32, 48)))
    sum((o * torch.randn_like(o)).sum() for o in outs).backward()
    params = [*backbone.named_parameters(), *neck.named_parameters()]
    assert [n for n, p in params if p.grad is None] == []


@pytest.mark.parametrize('kwargs,inputs,match', [
    (dict(scales=(4, 3)), 1, 'scales'),
    (dict(scales=(1, 2)), 1, 'scales'),
    (dict(scales=(2, 1), word_channels=8), 1, 'no'),
    (dict(out_channels=[8, 8]), 1, 'one width per scale'),
    (dict(), 3, 'takes 1 or 4 sentence maps, got 3'),
])
def test_bad_arguments_raise(kwargs, inputs, match):
    with pytest.raises(ValueError, match=match):
        neck = SimpleFeaturePyramid(in_channels=16, **kwargs)
        neck([torch.randn(1, 16, 2, 2)] * inputs)
