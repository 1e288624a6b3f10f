"""torch.compile: both backbones trace to one graph (no graph breaks, so ``fullgraph=True``
compiles them) and the compiled model computes what the eager one does, gradients included."""
from unittest.mock import patch

import pytest
import torch

from tnt_backbone.models import TNT, PyramidTNT
from tnt_backbone.models.backbones import pyramid_tnt

SMALL_ARCH = dict(word_dim=8, sentence_dim=48, depth=2, word_heads=2, sentence_heads=3,
                  mlp_ratio=4.)
PYRAMID_ARCH = dict(depths=[1, 1, 1, 1], word_dims=[4, 8, 16, 16],
                    sentence_dims=[16, 32, 64, 64], word_heads=[1, 1, 2, 2],
                    sentence_heads=[1, 2, 4, 4])

# (name, model factory, input shape, train mode)
CASES = [
    ('tnt-v2-featmap-word-map',
     lambda: TNT(arch=SMALL_ARCH, out_indices=(0, 1), word_map_index=0), (2, 3, 40, 72), False),
    ('tnt-legacy-cls-token',
     lambda: TNT(arch=SMALL_ARCH, layout='legacy', out_type='cls_token', out_indices=(0, 1)),
     (2, 3, 32, 48), False),
    # a 5 x 3 sentence grid in 2 x 2 windows: padded windows, masked keys
    ('tnt-windows-padded',
     lambda: TNT(arch=SMALL_ARCH, window_size=2, global_attn_indices=(1,), out_indices=(0, 1)),
     (1, 3, 80, 48), False),
    ('tnt-train-with-cp-words',
     lambda: TNT(arch=SMALL_ARCH, with_cp='words', out_indices=(0, 1)), (2, 3, 32, 48), True),
    ('tnt-train-with-cp-blocks-legacy',
     lambda: TNT(arch=SMALL_ARCH, layout='legacy', with_cp=True, out_indices=(0, 1)),
     (2, 3, 32, 48), True),
    ('pyramid-tnt-featmap-odd-size', lambda: PyramidTNT(arch=PYRAMID_ARCH), (1, 3, 75, 61),
     False),
    ('pyramid-tnt-train',
     lambda: PyramidTNT(arch=PYRAMID_ARCH, with_cp='words'), (2, 3, 64, 48), True),
]


def build(factory, train):
    torch.manual_seed(0)
    model = factory()
    model.init_weights()
    return model.train(train)


def run(model, x, train):
    """Outputs, and with ``train`` the gradient of every parameter under a fixed random
    projection of the outputs."""
    outs = model(x)
    if not train:
        return outs, []
    g = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=g)).sum() for o in outs)
    params = [p for p in model.parameters() if p.requires_grad]
    return outs, torch.autograd.grad(loss, params)


@pytest.mark.parametrize('name,factory,shape,train', CASES, ids=[c[0] for c in CASES])
def test_forward_is_one_graph(name, factory, shape, train):
    torch._dynamo.reset()
    explained = torch._dynamo.explain(build(factory, train))(torch.randn(shape))
    reasons = [f'{b.reason} at {b.user_stack[-1] if b.user_stack else "?"}'
               for b in explained.break_reasons]
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


def assert_compiled_equals_eager(factory, shape, train, backend):
    model = build(factory, train)
    x = torch.randn(shape)
    torch._dynamo.reset()
    outs, grads = run(torch.compile(model, fullgraph=True, backend=backend), x, train)
    ref_outs, ref_grads = run(model, x, train)
    assert len(outs) == len(ref_outs)
    for out, ref in zip(outs, ref_outs):
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)
    assert len(grads) == len(ref_grads)
    # PyramidTNT's stem convs feed training-mode BatchNorm, which cancels their biases:
    # those gradients are rounding noise around 0, so the tolerance scales with the largest.
    scale = max((g.abs().max().item() for g in ref_grads), default=0)
    for grad, ref in zip(grads, ref_grads):
        torch.testing.assert_close(grad, ref, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize('name,factory,shape,train', CASES, ids=[c[0] for c in CASES])
def test_fullgraph_compile_equals_eager(name, factory, shape, train):
    """aot_eager traces forward and backward as inductor does (dynamo, then AOTAutograd) but
    runs the traced graphs with eager kernels: any difference is the tracing's."""
    assert_compiled_equals_eager(factory, shape, train, 'aot_eager')


def test_fullgraph_compile_of_chunked_bias_attention_equals_eager():
    """At detection sizes PyramidTNT trains its resized biases through its own autograd
    function (flash forward, backward in query chunks); forced here at a small size."""
    with patch.object(pyramid_tnt, 'MAX_KEPT_SCORES', 64), \
            patch.object(pyramid_tnt, 'SCORES_CHUNK', 100):
        assert_compiled_equals_eager(CASES[-1][1], CASES[-1][2], True, 'aot_eager')


@pytest.mark.slow
def test_inductor_training_step_equals_eager():
    """Inductor generates its own kernels around the fused word-attention operator, forward
    and backward."""
    _, factory, shape, train = CASES[3]
    assert_compiled_equals_eager(factory, shape, train, 'inductor')
