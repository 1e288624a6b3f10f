"""PyramidTNT backbone: parameter counts, shapes, parity with the official code, options."""
import math
import os
import re
from argparse import Namespace
from unittest.mock import patch

import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.engine import LayerDecayOptimWrapperConstructor
from tnt_backbone.models import PyramidTNT
from tnt_backbone.models.backbones import pyramid_tnt
from tnt_backbone.models.backbones.pyramid_tnt import convert_pyramid_tnt, resize_attn_bias

FIXTURES = torch.load(os.path.join(os.path.dirname(__file__), 'fixtures',
                                   'pyramid_tnt_reference.pt'), weights_only=True)
SMALL_ARCH = dict(depths=[1, 2, 1, 1], word_dims=[4, 8, 8, 8], sentence_dims=[16, 32, 32, 32],
                  word_heads=[1, 2, 2, 2], sentence_heads=[1, 2, 2, 2], img_size=64)


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope='module')
def fixture_tool(load_tool):
    return load_tool('analysis/make_pyramid_tnt_fixtures.py')


def official_weights(fixture_tool, name):
    entry = FIXTURES[name]
    return fixture_tool.seeded_state_dict(entry['spec'], entry['seed'])


# Independent facts: the official models with their 1000-class head (as stated in issue 13 and
# counted from huawei-noah's pyramid_tnt.py).
@pytest.mark.parametrize('arch,expected', [('tiny', 10_578_529), ('small', 31_953_200),
                                           ('medium', 84_943_572), ('base', 156_990_072)])
def test_parameter_counts_match_official(arch, expected):
    model = PyramidTNT(arch=arch, out_indices=(3,), out_type='avg_featmap')
    head = model.sentence_dims[-1] * 1000 + 1000
    assert count(model) + head == expected


@pytest.mark.parametrize('name', ['tiny', 'small', 'medium', 'base', 'tiny_se'])
def test_outputs_match_official(fixture_tool, name):
    entry = FIXTURES[name]
    sd = convert_pyramid_tnt(official_weights(fixture_tool, name))
    arch = name.split('_')[0]
    model = PyramidTNT(arch=arch, with_se=bool(entry['kwargs'].get('se')), out_indices=(3,),
                       word_out_indices=(3,)).eval()
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in sd.items() if not k.startswith('head.')}, strict=False)
    assert not unexpected and missing == ['word_norm3.weight', 'word_norm3.bias']
    x = fixture_tool.seeded_input(entry['seed'] + 1, entry['img_size'])
    with torch.no_grad():
        word_map, sentence_map = model(x)
        model.out_type = 'avg_featmap'
        feature = model(x)[1]
    assert (feature - entry['feature']).abs().max() < 1e-5
    logits = F.linear(feature, sd['head.fc.weight'], sd['head.fc.bias'])
    assert (logits - entry['logits']).abs().max() < 1e-5
    ref = entry['stage3_sentences'].transpose(1, 2).reshape(sentence_map.shape)
    assert (sentence_map - ref).abs().max() < 1e-5
    if 'stage3_words' in entry:  # (B*H*W, 4*4, c) -> a (B, c, 4H, 4W) map, freshly normalised
        H, W = sentence_map.shape[-2:]
        words = F.layer_norm(entry['stage3_words'], entry['stage3_words'].shape[-1:])
        words = words.reshape(1, H, W, 4, 4, -1).permute(0, 5, 1, 3, 2, 4)
        assert (word_map - words.reshape(word_map.shape)).abs().max() < 1e-5


@pytest.mark.parametrize('hw', [(256, 256), (333, 517)])
def test_shapes_of_every_output(hw):
    model = PyramidTNT(arch='small', word_out_indices=(0, 1)).eval()
    Hs, Ws = -(-hw[0] // 8), -(-hw[1] // 8)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    expected = [(8, 4 * Hs, 4 * Ws), (16, 4 * -(-Hs // 2), 4 * -(-Ws // 2))]  # strides 2, 4
    for i, c in enumerate((128, 256, 512, 512)):  # sentences: strides 8, 16, 32, 64
        expected.append((c, -(-Hs // 2 ** i), -(-Ws // 2 ** i)))
    assert [tuple(o.shape[1:]) for o in outs] == expected


@pytest.mark.slow
def test_shapes_at_detection_size():
    model = PyramidTNT(arch='tiny', word_out_indices=(1,)).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 800, 1344))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (10, 200, 336), (80, 100, 168), (160, 50, 84), (320, 25, 42), (320, 13, 21)]


def test_bias_resize_is_identity_at_training_grid():
    model = PyramidTNT(arch=SMALL_ARCH).eval()
    x = torch.randn(1, 3, 64, 64)
    for stage, grid in zip(model.stages, [(8, 8), (4, 4), (2, 2), (1, 1)]):
        assert stage.resized_bias(grid) is stage.attn_bias
    bias = torch.randn(1, 2, 64, 4)
    assert torch.equal(resize_attn_bias(bias, (8, 8), (2, 2), (8, 8), (2, 2)), bias)
    # and the whole model at its training size does not touch the stored grids
    with torch.no_grad():
        model(x)
    assert all(s._bias_cache[1].data_ptr() == s.attn_bias.data_ptr() for s in model.stages)


def test_bias_resize_on_both_grids():
    # b[h, q, k] = f[h, q] + g[h, k]: interpolation is linear, so each part is resized on its
    # own grid, computed here independently with F.interpolate.
    f, g = torch.randn(1, 2, 4, 6), torch.randn(1, 2, 3, 2)
    bias = f.flatten(2)[..., None] + g.flatten(2)[:, :, None]
    out = resize_attn_bias(bias, (4, 6), (3, 2), (7, 5), (2, 4))
    f2 = F.interpolate(f, (7, 5), mode='bicubic', align_corners=False).flatten(2)
    g2 = F.interpolate(g, (2, 4), mode='bicubic', align_corners=False).flatten(2)
    assert out.shape == (1, 2, 35, 8)
    assert torch.allclose(out, f2[..., None] + g2[:, :, None], atol=1e-5)
    with pytest.raises(ValueError, match='does not match'):
        resize_attn_bias(bias, (4, 5), (3, 2), (7, 5), (2, 4))


def test_bias_resize_matches_interpolate_values_and_gradients():
    """Any bias, larger and smaller grids: the separable matrix products give F.interpolate's
    bicubic resize, first on the key grid (per query), then on the query grid (per key), in
    float64; and the gradient that it sends back to the stored grid."""
    for src_q, src_k, dst_q, dst_k in [((4, 6), (3, 2), (9, 13), (5, 4)),
                                       ((6, 5), (3, 3), (4, 7), (3, 3)),
                                       ((4, 4), (2, 3), (4, 4), (1, 5))]:
        bias = torch.randn(1, 3, math.prod(src_q), math.prod(src_k), dtype=torch.float64)
        weight = torch.randn(1, 3, math.prod(dst_q), math.prod(dst_k), dtype=torch.float64)

        def reference(b):
            x = F.interpolate(b.reshape(1, -1, *src_k), dst_k, mode='bicubic',
                              align_corners=False)
            x = x.reshape(3, *src_q, -1).permute(0, 3, 1, 2).reshape(1, -1, *src_q)
            x = F.interpolate(x, dst_q, mode='bicubic', align_corners=False)
            return x.reshape(3, -1, math.prod(dst_q)).transpose(1, 2).unsqueeze(0)

        outs, grads = [], []
        for fn in (lambda b: resize_attn_bias(b, src_q, src_k, dst_q, dst_k), reference):
            b = bias.clone().requires_grad_()
            out = fn(b.float() if fn is not reference else b)
            (out.double() * weight).sum().backward()
            outs.append(out.double())
            grads.append(b.grad)
        assert outs[0].is_contiguous() and outs[0].shape == outs[1].shape
        torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-5)


def test_bias_cache_follows_size_and_weights():
    model = PyramidTNT(arch=SMALL_ARCH).eval()
    stage = model.stages[0]
    with torch.no_grad():
        a = stage.resized_bias((10, 12))
        assert stage.resized_bias((10, 12)) is a
        assert stage.resized_bias((9, 12)).shape == (1, 1, 108, 6)
        stage.attn_bias.add_(1)  # e.g. an optimizer step
        b = stage.resized_bias((10, 12))
    assert b is not a and torch.allclose(b, a + 1, atol=1e-4)


def test_training_at_another_size_reaches_every_parameter():
    model = PyramidTNT(arch=SMALL_ARCH, word_out_indices=(1,), drop_path_rate=0.1).train()
    outs = model(torch.randn(2, 3, 72, 88))
    sum(o.square().mean() for o in outs).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad


@pytest.mark.parametrize('with_cp', [True, 'words'])
def test_with_cp_gives_the_same_outputs_and_gradients(with_cp):
    torch.manual_seed(0)
    plain = PyramidTNT(arch=SMALL_ARCH, word_out_indices=(0,))
    plain.init_weights()
    cp = PyramidTNT(arch=SMALL_ARCH, word_out_indices=(0,), with_cp=with_cp)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 80)
    outs, grads = [], []
    for model in (plain, cp):
        model.train()
        out = model(x)
        sum(o.sum() for o in out).backward()
        outs.append(out)
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*outs))
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-5) for n in grads[0])


def test_with_cp_words_keeps_no_word_activations():
    """With ``with_cp='words'``, autograd keeps none of the word transformers' MLP inputs
    (B*N, 16, 4c) but still the sentence MLPs' (B, N, 4D)."""
    def saved_shapes(with_cp):
        model = PyramidTNT(arch=SMALL_ARCH, with_cp=with_cp).train()
        shapes = []
        with torch.autograd.graph.saved_tensors_hooks(
                lambda t: shapes.append(tuple(t.shape)) or t, lambda t: t):
            model(torch.randn(1, 3, 64, 64))
        return shapes
    # stage 0: 8x8 sentences of 16 words of dim 4 (MLP hidden 16); sentences of dim 16
    word_hidden, sentence_hidden = (64, 16, 16), (1, 64, 64)
    plain, words = saved_shapes(False), saved_shapes('words')
    assert word_hidden in plain and word_hidden not in words
    assert sentence_hidden in words


@pytest.mark.parametrize('dtype,batch', [(torch.float32, 2), (torch.bfloat16, 3)])
@pytest.mark.parametrize('chunk_queries', [4, None])
def test_biased_attention_matches_sdpa_in_float64(dtype, batch, chunk_queries):
    """Both CPU training paths of the bias compute SDPA's function (values and gradients of
    q, k, v and the bias): flash forward and a backward in query chunks for score matrices
    over ``MAX_KEPT_SCORES`` (4 queries a chunk: 70 = 17 * 4 + 2), autograd on the plain math
    for smaller ones (None: this size)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(batch, 3, n, 16, dtype=dtype, requires_grad=True)
               for n in (70, 23, 23))
    bias = torch.randn(1, 3, 70, 23, dtype=dtype, requires_grad=True)
    weight = torch.randn(batch, 3, 70, 16)

    def run(fn, *args):
        args = [a.detach().requires_grad_() for a in args]
        out = fn(*args)
        (out.double() * weight).sum().backward()
        return [out] + [a.grad for a in args]

    chunk = 3 * 23 * batch * chunk_queries if chunk_queries else pyramid_tnt.MAX_KEPT_SCORES
    with patch.object(pyramid_tnt, 'MAX_KEPT_SCORES', chunk), \
            patch.object(pyramid_tnt, 'SCORES_CHUNK', chunk):
        ours = run(lambda *a: pyramid_tnt.biased_attention(*a, scale=0.3), q, k, v, bias)
    ref = run(lambda q, k, v, b: F.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), attn_mask=b.double(), scale=0.3), q, k, v, bias)
    for a, b in zip(ours, ref):
        a, b = a.double().flatten(), b.double().flatten()
        if dtype == torch.float32:
            assert (a - b).norm() / b.norm() < 1e-6
        else:
            assert F.cosine_similarity(a, b, dim=0) > 0.9999


@pytest.mark.parametrize('chunk,kept', [(1000, 0), (3 * 2 * 80 * 20, 1)])
def test_biased_attention_keeps_no_attention_matrix(chunk, kept):
    """In training on the CPU the sentence attention keeps no (B, heads, Nq, Nk) matrix for
    backward when it has more than ``MAX_KEPT_SCORES`` scores (SDPA's unfused path, which a
    bias with a gradient selects, keeps two), and only the probabilities up to that size."""
    attn = pyramid_tnt.SpatialReductionAttention(32, 2, sr_ratio=2).train()
    bias = torch.randn(1, 2, 80, 20, requires_grad=True)
    saved = set()  # distinct tensors: softmax and the matmul after it save the same one
    with patch.object(pyramid_tnt, 'MAX_KEPT_SCORES', chunk), \
            torch.autograd.graph.saved_tensors_hooks(
                lambda t: saved.add((t.numel(), t.data_ptr())) or t, lambda t: t):
        attn(torch.randn(3, 80, 32), (8, 10), bias)
    assert saved and [n for n, _ in saved].count(3 * 2 * 80 * 20) == kept


def test_frozen_stages_and_norm_eval():
    model = PyramidTNT(arch=SMALL_ARCH, frozen_stages=2, norm_eval=True).train()
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(n.startswith(('stem.', 'word_pos', 'sentence_pos', 'stages.0.', 'stages.1.',
                             'norm0.', 'norm1.')) for n in frozen)
    assert any(n.startswith('stages.1.word_aggregation') for n in frozen)
    assert all(p.requires_grad for n, p in model.named_parameters()
               if n.startswith(('stages.2.', 'stages.3.', 'norm2.', 'norm3.')))
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.stages[2].training and not model.stages[1].training
    mean = bns[0].running_mean.clone()
    model(torch.randn(2, 3, 64, 64))
    assert torch.equal(bns[0].running_mean, mean)


def test_layer_depth_for_layer_decay():
    model = PyramidTNT(arch=SMALL_ARCH)
    n = sum(SMALL_ARCH['depths']) + 2
    depth = model.get_layer_depth
    assert depth('stem.conv.0.weight') == (0, n) and depth('sentence_pos') == (0, n)
    assert depth('backbone.stages.1.blocks.1.word_attn.qkv.weight', 'backbone.') == (3, n)
    assert depth('stages.1.word_aggregation.conv.weight') == (2, n)
    assert depth('stages.3.attn_bias') == (5, n) and depth('norm3.weight') == (6, n)
    groups = []
    LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay_rate=0.5)).add_params(groups, model)
    scales = {g['lr_scale'] for g in groups}
    assert scales == {0.5 ** k for k in range(n)}
    assert sum(len(g['params']) for g in groups) == len(list(model.parameters()))


def test_pretrained_official_checkpoint_and_round_trip(tmp_path, fixture_tool):
    official = official_weights(fixture_tool, 'tiny')
    path = str(tmp_path / 'ptnt_ti.pt')
    torch.save({'model': official}, path)
    model = PyramidTNT(arch='tiny', out_indices=(3,),
                       init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    ours = convert_pyramid_tnt(official)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ours.items()
               if not k.startswith('head.'))
    # our own format (a classifier checkpoint with backbone. keys) converts to itself
    wrapped = {'state_dict': {f'backbone.{k}': v for k, v in model.state_dict().items()}}
    path2 = str(tmp_path / 'ours.pt')
    torch.save(wrapped, path2)
    again = PyramidTNT(arch='tiny', out_indices=(3,),
                       init_cfg=dict(type='Pretrained', checkpoint=path2))
    again.init_weights()
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
    # every official tensor arrived: same number of values as our model without the head
    assert sum(v.numel() for k, v in ours.items() if not k.startswith('head.')) == sum(
        v.numel() for v in model.state_dict().values())


def test_pretrained_from_another_grid_is_resized(tmp_path, fixture_tool):
    path = str(tmp_path / 'ptnt_ti.pt')
    torch.save(official_weights(fixture_tool, 'tiny'), path)  # trained at 192
    model = PyramidTNT(arch='tiny', img_size=256,
                       init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert model.sentence_pos.shape == (1, 32 * 32, 80)
    assert model.stages[0].attn_bias.shape == (1, 2, 32 * 32, 8 * 8)
    no_bias = PyramidTNT(arch='tiny', with_attn_bias=False,
                         init_cfg=dict(type='Pretrained', checkpoint=path))
    no_bias.init_weights()
    assert not any('attn_bias' in n for n, _ in no_bias.named_parameters())


def test_list_init_cfg_and_ema_weights_load_through_the_converter(tmp_path, fixture_tool):
    """A Pretrained entry inside a list init_cfg converts as the dict form does; a training
    checkpoint's EMA copy is the one taken."""
    official = official_weights(fixture_tool, 'tiny')
    decoy = {k: torch.zeros_like(v) for k, v in official.items()}
    path = str(tmp_path / 'ptnt_ti.pth.tar')
    torch.save({'state_dict': decoy, 'state_dict_ema': official}, path)
    model = PyramidTNT(arch='tiny', out_indices=(3,), init_cfg=[
        dict(type='Constant', layer='Linear', val=0.5),
        dict(type='Pretrained', checkpoint=path)])
    model.init_weights()
    for k, v in convert_pyramid_tnt(official).items():
        if not k.startswith('head.'):
            assert torch.equal(model.state_dict()[k], v), k


def test_wrong_checkpoint_is_an_error(tmp_path, fixture_tool):
    path = str(tmp_path / 'ptnt_ti.pt')
    torch.save(official_weights(fixture_tool, 'tiny'), path)
    with pytest.raises(ValueError, match='does not fit this PyramidTNT'):
        PyramidTNT(arch='small', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()
    torch.save({'conv.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='not a PyramidTNT checkpoint'):
        PyramidTNT(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'unknown PyramidTNT arch'),
    (dict(arch=dict(depths=[1, 1])), 'custom PyramidTNT arch'),
    (dict(out_indices=(0, 4)), 'out_indices'),
    (dict(out_indices=(2, 1)), 'increasing'),
    (dict(out_indices=(), word_out_indices=()), 'nothing to output'),
    (dict(out_type='cls_token'), 'out_type'),
    (dict(img_size=200), 'multiple of 64'),
    (dict(frozen_stages=5), 'frozen_stages'),
    (dict(with_cp='blocks'), 'with_cp'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PyramidTNT(**{'arch': SMALL_ARCH, **kwargs})


def test_bad_inputs():
    model = PyramidTNT(arch=SMALL_ARCH)
    with pytest.raises(ValueError, match='at least 32 pixels'):
        model(torch.randn(1, 3, 24, 64))
    with pytest.raises(ValueError, match='input channels'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match='floating-point'):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


# The paper's FLOPs (0.6 / 3.3 / 8.2 / 16.0 G at the training size), counted here as
# multiply-accumulates by tools/analysis/get_flops.py.
@pytest.mark.parametrize('arch,size,gflops', [('tiny', 192, 0.6), ('small', 256, 3.3),
                                              ('medium', 256, 8.2), ('base', 256, 16.0)])
def test_flops_match_paper(load_tool, arch, size, gflops):
    get_flops = load_tool('analysis/get_flops.py')
    model = get_flops.backbone_model(Namespace(model='pyramid-tnt', arch=arch))
    flops, _ = get_flops.count(model, (torch.randn(1, 3, size, size), ))
    assert flops / 1e9 == pytest.approx(gflops, abs=0.05)


def test_benchmark_handles_pyramid_tnt(load_tool, capsys):
    load_tool('analysis/benchmark.py').main(
        ['--model', 'pyramid-tnt', '--arch', 'tiny', '--batch', '2', '--mode', 'train',
         '--iters', '1', '--warmup', '0'])
    out = capsys.readouterr().out
    assert out.startswith('pyramid-tnt-tiny v2 train fp32 192x192 batch 2')
    assert float(re.search(r'ours:\s+([\d.]+) img/s', out).group(1)) > 0
