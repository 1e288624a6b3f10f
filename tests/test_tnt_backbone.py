"""TNT backbone: shapes, parameter counts, options and bad inputs."""
import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.models import TNT

SMALL_ARCH = dict(word_dim=8, sentence_dim=48, depth=4, word_heads=2, sentence_heads=3,
                  mlp_ratio=4.)


def count(model):
    return sum(p.numel() for p in model.parameters())


# Independent facts: timm's TNT with num_classes=0 (final norm included), same archs.
@pytest.mark.parametrize('arch,layout,expected', [
    ('tiny', 'v2', 5_883_408), ('small', 'v2', 23_383_584), ('base', 'v2', 64_787_680),
    ('ti', 'legacy', 5_876_784), ('s', 'legacy', 23_370_336), ('b', 'legacy', 64_765_600),
])
def test_parameter_counts_match_reference(arch, layout, expected):
    model = TNT(arch=arch, layout=layout, out_type='cls_token', out_indices=(-1,))
    assert count(model) == expected


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
@pytest.mark.parametrize('hw', [(224, 224), (64, 96), (16, 16), (45, 77)])
def test_featmap_shapes(arch, hw):
    model = TNT(arch=arch).eval()
    D = model.sentence_dim
    Hp, Wp = -(-hw[0] // 16), -(-hw[1] // 16)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *hw))
    assert [tuple(o.shape) for o in outs] == [(1, D, Hp, Wp)] * 4


def test_featmap_and_cls_token_outputs():
    x = torch.randn(2, 3, 40, 72)
    featmap = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(0, -1)).eval()
    cls = TNT(arch=SMALL_ARCH, out_type='cls_token', out_indices=(1, 3)).eval()
    with torch.no_grad():
        assert [tuple(o.shape) for o in featmap(x)] == [(2, 48, 3, 5)] * 2
        assert [tuple(o.shape) for o in cls(x)] == [(2, 48)] * 2


def test_blocks_after_the_last_output_are_not_built():
    model = TNT(arch='small', out_indices=(7,))
    assert len(model.blocks) == 8
    full = TNT(arch='small', out_type='cls_token', out_indices=(-1,))
    # 4 of the 12 blocks less; one output norm in place of the final norm (both 2 x 384)
    per_block = sum(p.numel() for p in full.blocks[0].parameters())
    assert count(model) == count(full) - 4 * per_block
    x = torch.randn(1, 3, 32, 48)
    model.train()
    sum((o * torch.randn_like(o)).sum() for o in model(x)).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_word_map_places_each_word_in_its_cell():
    """The stride-4 word map puts word (r, c) of sentence (i, j) at pixel (4i + r, 4j + c)."""
    model = TNT(arch=SMALL_ARCH, out_indices=(1, 3), word_map_index=1).eval()
    model.word_norm.weight.data.uniform_(0.5, 1.5)
    model.word_norm.bias.data.normal_()
    Hp, Wp, c = 2, 3, SMALL_ARCH['word_dim']
    words = torch.randn(Hp * Wp, 16, c)
    out = model.word_map(words, (Hp, Wp))
    normed = F.layer_norm(words, (c,), model.word_norm.weight, model.word_norm.bias)
    assert out.shape == (1, c, 4 * Hp, 4 * Wp)
    for i in range(Hp):
        for j in range(Wp):
            for r in range(4):
                for col in range(4):
                    torch.testing.assert_close(out[0, :, 4 * i + r, 4 * j + col],
                                               normed[i * Wp + j, r * 4 + col])


def test_word_map_comes_first_and_is_the_chosen_blocks_words():
    torch.manual_seed(0)
    model = TNT(arch=SMALL_ARCH, out_indices=(2, 3), word_map_index=1).eval()
    x = torch.randn(2, 3, 40, 72)
    with torch.no_grad():
        outs = model(x)
        words, sentences, hw = model.embed(x)
        for block in model.blocks[:2]:
            words, sentences = block(words, sentences, hw)
        expect = model.word_map(words, hw)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 12, 20), (2, 48, 3, 5), (2, 48, 3, 5)]
    torch.testing.assert_close(outs[0], expect)


def test_padding_equals_explicit_zero_padding():
    model = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(-1,)).eval()
    x = torch.randn(1, 3, 37, 50)
    with torch.no_grad():
        a = model(x)[0]
        b = model(F.pad(x, (0, 14, 0, 11)))[0]
    torch.testing.assert_close(a, b)


def test_position_interpolation_is_identity_at_pretraining_grid():
    from tnt_backbone.models.layers import resize_pos_embed
    pos = torch.randn(1, 1 + 14 * 14, 8)
    assert resize_pos_embed(pos, (14, 14), (14, 14)) is pos
    # bicubic resize of a constant grid is constant; the class token is kept
    const = torch.cat([torch.randn(1, 1, 8), torch.ones(1, 196, 8) * 3], dim=1)
    out = resize_pos_embed(const, (14, 14), (20, 9))
    assert out.shape == (1, 1 + 180, 8)
    torch.testing.assert_close(out[:, 0], const[:, 0])
    torch.testing.assert_close(out[:, 1:], torch.full((1, 180, 8), 3.))


def test_position_gradient_reaches_stored_grid_at_other_size():
    model = TNT(arch=SMALL_ARCH, img_size=64, out_type='cls_token', out_indices=(-1,))
    out = model(torch.randn(1, 3, 96, 80))[0]
    (out * torch.randn_like(out)).sum().backward()  # a plain sum of a LayerNorm output is 0
    assert model.sentence_pos.grad is not None and model.sentence_pos.grad[:, 1:].abs().sum() > 0


def test_frozen_stages_get_no_gradient():
    model = TNT(arch=SMALL_ARCH, frozen_stages=2)
    model.train()
    sum(o.sum() for o in model(torch.randn(2, 3, 32, 32))).backward()
    frozen = ['word_embed.', 'word_pos', 'sentence_embed.', 'cls_token', 'sentence_pos',
              'blocks.0.', 'blocks.1.']
    for name, p in model.named_parameters():
        is_frozen = name.startswith(tuple(frozen))
        assert p.requires_grad != is_frozen, name
        if is_frozen:
            assert p.grad is None, name
    assert model.training and not model.blocks[0].training and model.blocks[2].training


@pytest.mark.parametrize('with_cp', [True, 'words'])
def test_with_cp_same_outputs_and_gradients(with_cp):
    torch.manual_seed(0)
    plain = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(1, 3))
    ckpt = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(1, 3), with_cp=with_cp)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 48, 32)
    grads = []
    for model in (plain, ckpt):
        model.train()
        outs = model(x)
        sum((o * torch.arange(o.numel()).reshape(o.shape).sin()).sum() for o in outs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == {n for n, _ in plain.named_parameters()}
    torch.testing.assert_close(grads[0], grads[1])


def test_with_cp_keeps_fewer_activations_for_backward():
    """What autograd keeps from the forward: checkpointing the word layers keeps less than
    nothing, checkpointing whole blocks less still (counted with saved-tensor hooks)."""
    x = torch.randn(2, 3, 64, 64)

    def saved_bytes(with_cp):
        torch.manual_seed(0)
        model = TNT(arch=SMALL_ARCH, out_indices=(3,), with_cp=with_cp).train()
        total = []

        def pack(t):
            total.append(t.numel() * t.element_size())
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return sum(total)

    plain, words, blocks = saved_bytes(False), saved_bytes('words'), saved_bytes(True)
    assert blocks < words < 0.75 * plain


def test_drop_path_is_stochastic_in_train_and_off_in_eval():
    model = TNT(arch=SMALL_ARCH, drop_path_rate=0.5, out_type='cls_token', out_indices=(-1,))
    x = torch.randn(4, 3, 32, 32)
    model.train()
    assert not torch.allclose(model(x)[0], model(x)[0])
    model.eval()
    torch.testing.assert_close(model(x)[0], model(x)[0])


def test_window_attention_equals_global_when_window_covers_grid():
    torch.manual_seed(0)
    glob = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(-1,)).eval()
    win = TNT(arch=SMALL_ARCH, out_type='featmap', out_indices=(-1,), window_size=4,
              global_attn_indices=()).eval()
    win.load_state_dict(glob.state_dict())
    x = torch.randn(1, 3, 64, 64)  # 4x4 grid: one window
    with torch.no_grad():
        torch.testing.assert_close(win(x)[0], glob(x)[0], rtol=1e-4, atol=1e-5)
        # a larger grid: windows restrict attention, so outputs differ but keep their shape
        y = torch.randn(1, 3, 112, 80)
        assert win(y)[0].shape == glob(y)[0].shape
        assert not torch.allclose(win(y)[0], glob(y)[0])


def test_window_attention_matches_per_window_global_attention():
    """Grid tokens of a window equal plain attention over (class token + that window), the
    class token attends to everything; values and gradients, partial windows included."""
    from tnt_backbone.models.layers import Attention
    torch.manual_seed(0)
    attn = Attention(16, 2, window_size=2).double().eval()
    full = Attention(16, 2).double().eval()
    full.load_state_dict(attn.state_dict())
    H, W = 3, 5  # padded to 4x6 -> 2x3 windows; the last row/column of windows is partial
    x = torch.randn(2, 1 + H * W, 16, dtype=torch.float64, requires_grad=True)
    grid = x[:, 1:].reshape(2, H, W, 16)
    expect = torch.empty(2, H, W, 16, dtype=torch.float64)
    for r in range(0, H, 2):
        for c in range(0, W, 2):
            win = grid[:, r:r + 2, c:c + 2]
            out = full(torch.cat([x[:, :1], win.reshape(2, -1, 16)], dim=1))[:, 1:]
            expect[:, r:r + 2, c:c + 2] = out.reshape(win.shape)
    expect = torch.cat([full(x)[:, :1], expect.reshape(2, H * W, 16)], dim=1)
    res = attn(x, (H, W))
    torch.testing.assert_close(res, expect)
    weights = torch.randn_like(res)
    grad, = torch.autograd.grad((res * weights).sum(), x)
    expect_grad, = torch.autograd.grad((expect * weights).sum(), x)
    torch.testing.assert_close(grad, expect_grad)


@pytest.mark.parametrize('bad,exc,match', [
    (torch.randn(1, 4, 32, 32), ValueError, '3 input channels'),
    (torch.randn(3, 32, 32), ValueError, '4-D'),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), TypeError, 'floating-point'),
])
def test_bad_inputs_raise_clear_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        TNT(arch=SMALL_ARCH)(bad)


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='huge'), 'unknown TNT arch'),
    (dict(arch=dict(word_dim=8)), 'custom TNT arch'),
    (dict(layout='v3'), 'layout'),
    (dict(out_type='tokens'), 'out_type'),
    (dict(out_type='pyramid'), 'SimpleFeaturePyramid'),
    (dict(with_cp='sentences'), 'with_cp'),
    (dict(out_indices=(1, 2), word_map_index=3), 'after the last'),
    (dict(out_type='cls_token', word_map_index=0), 'featmap'),
    (dict(out_indices=(0, 1, 2, 12)), 'outside'),
    (dict(out_indices=(3, 2, 1, 0)), 'increasing'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TNT(**kwargs)


def test_layer_depth_and_no_weight_decay():
    model = TNT(arch=SMALL_ARCH)
    assert model.get_layer_depth('cls_token') == (0, 6)
    assert model.get_layer_depth('word_embed.proj.weight') == (0, 6)
    assert model.get_layer_depth('blocks.2.sentence_layer.attn.qkv.weight') == (3, 6)
    assert model.get_layer_depth('out_norms.1.weight') == (5, 6)
    assert model.no_weight_decay() == {'word_pos', 'sentence_pos', 'cls_token'}


def test_registered_in_scope_and_buildable_by_name():
    from mmengine.registry import MODELS as ROOT
    model = ROOT.build(dict(type='tnt_backbone.TNT', arch=SMALL_ARCH))
    assert isinstance(model, TNT)


@pytest.mark.parametrize('layout', ['v2', 'legacy'])
def test_class_token_only_block_matches_the_full_block(layout):
    """The last block of class-token outputs updates the class token alone: same values and
    the same gradients as taking the class token of the full block."""
    from tnt_backbone.models.layers.tnt_block import TNTBlock
    torch.manual_seed(0)
    block = TNTBlock(12, 48, 16, 2, 3, layout=layout, qkv_bias=True)
    words = torch.randn(2 * 6, 16, 12, requires_grad=True)
    sentences = torch.randn(2, 1 + 6, 48, requires_grad=True)
    full = block(words, sentences, (2, 3))[1][:, :1]
    only = block(words, sentences, (2, 3), cls_only=True)[1]
    assert only.shape == (2, 1, 48)
    torch.testing.assert_close(only, full)
    weights = torch.randn_like(only)
    params = [words, sentences, *block.parameters()]
    torch.testing.assert_close(
        torch.autograd.grad((only * weights).sum(), params),
        torch.autograd.grad((full * weights).sum(), params))


@pytest.mark.parametrize('out_type', ['cls_token', 'featmap'])
def test_trains_under_bf16_autocast(out_type):
    """Mixed precision (autocast, as mmengine's AmpOptimWrapper runs it): every parameter gets a
    finite gradient, close in direction to the fp32 one."""
    torch.manual_seed(0)
    model = TNT(arch='tiny', out_type=out_type).train()
    x = torch.randn(2, 3, 64, 80)

    def gradient(autocast):
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            outs = model(x)
        loss = sum((o.float() * torch.linspace(-1, 1, o.numel()).view_as(o)).sum()
                   for o in outs)
        loss.backward()
        assert all(p.grad is not None and p.grad.dtype == p.dtype for p in model.parameters())
        return torch.cat([p.grad.flatten() for p in model.parameters()]).double()

    full, mixed = gradient(False), gradient(True)
    assert torch.isfinite(mixed).all()
    assert torch.cosine_similarity(full, mixed, 0) > 0.99


@pytest.mark.parametrize('autocast', [False, True], ids=['fp32', 'bf16-autocast'])
def test_memory_saving_mlp_matches_plain_autograd(autocast):
    from tnt_backbone.models.layers import Mlp
    torch.manual_seed(0)
    mlp = Mlp(24, 96)
    x = torch.randn(3, 7, 24, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = mlp(x)
        expect = mlp.fc2(F.gelu(mlp.fc1(x)))
    assert out.dtype == expect.dtype
    torch.testing.assert_close(out, expect)
    weights = torch.randn_like(out)
    params = [x, *mlp.parameters()]
    grads = torch.autograd.grad((out * weights).sum(), params)
    expected = torch.autograd.grad((expect * weights).sum(), params)
    assert [g.dtype for g in grads] == [p.dtype for p in params]
    # bf16 sums over the 21 tokens may round in another order than autograd's
    tol = dict(rtol=2e-2, atol=2e-2) if autocast else {}
    torch.testing.assert_close(grads, expected, **tol)


@pytest.mark.parametrize('kwargs', [dict(), dict(out_indices=(5, 8, 11), word_map_index=2),
                                    dict(out_indices=(7,))])
def test_every_parameter_gets_a_gradient(kwargs):
    """Distributed training rejects parameters without gradient."""
    model = TNT(arch='tiny', **kwargs).train()
    x = torch.randn(2, 3, 32, 48)
    sum((o * torch.randn_like(o)).sum() for o in model(x)).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
