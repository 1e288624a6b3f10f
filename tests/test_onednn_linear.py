"""The backbones' linear layers through oneDNN on the CPU, in inference and training: the same
values and gradients as aten's linear, the op each path takes, and the backbones without any
aten matrix multiply by a weight left."""
import importlib
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from conftest import profiled_ops
from tnt_backbone.models import TNT, PyramidTNT
from tnt_backbone.models.layers import Linear
from tnt_backbone.ops import linear

linear_ops = importlib.import_module('tnt_backbone.ops.linear')
MATMULS = {'aten::addmm', 'aten::mm', 'aten::bmm', 'aten::matmul'}
needs_onednn = pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                  reason='torch without oneDNN')
# TNT with class-token output (its last block updates the class token alone), TNT with
# windowed and global blocks, PyramidTNT
BACKBONES = [
    lambda: TNT(arch='small', img_size=64, out_type='cls_token', out_indices=(-1,)),
    lambda: TNT(arch='small', img_size=64, out_indices=(1, 3), window_size=2,
                global_attn_indices=(3,)),
    lambda: PyramidTNT(arch='tiny', img_size=64, out_indices=(0, 1, 2, 3))]


@needs_onednn
@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize('activation', [None, 'gelu'])
def test_linear_takes_onednn_in_inference(dtype, tol, activation):
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip('no oneDNN bf16 on this CPU')
    torch.manual_seed(0)
    weight, bias = torch.randn(16, 24).to(dtype), torch.randn(16).to(dtype)
    full = torch.randn(3, 10, 24).to(dtype)
    for x in (full, full[:, :4], full.transpose(0, 1), full[0, 0], full[:, :0]):
        expected = F.linear(x.double(), weight.double(), bias.double())
        expected = F.gelu(expected) if activation else expected
        with torch.no_grad():
            out = []
            ops = profiled_ops(lambda: out.append(linear(x, weight, bias, activation)))
        assert 'mkldnn::_linear_pointwise' in ops and not ops & MATMULS, ops
        assert out[0].dtype == dtype and out[0].shape == expected.shape
        torch.testing.assert_close(out[0].double(), expected, rtol=tol, atol=tol)


def test_linear_takes_aten_ops_where_onednn_does_not_apply():
    torch.manual_seed(0)
    x, weight, bias = torch.randn(5, 8), torch.randn(16, 8), torch.randn(16)
    problem = linear_ops.linear_problem
    expected = F.gelu(F.linear(x, weight, bias))
    with torch.no_grad():
        assert problem(x.double(), weight.double()) == \
            'torch.float64 input and torch.float64 weight (fp32 or bf16 for both only)'
        torch.testing.assert_close(linear(x.double(), weight.double(), bias.double(), 'gelu'),
                                   expected.double(), rtol=1e-6, atol=1e-6)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert problem(x, weight) == 'CPU autocast'
            out = linear(x, weight, bias, 'gelu')
        assert out.dtype == torch.bfloat16  # as autocast's linear gives it
        torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)
        with torch.backends.mkldnn.flags(enabled=False):
            assert problem(x, weight) == 'torch without oneDNN (mkldnn), or oneDNN disabled'
            assert profiled_ops(lambda: linear(x, weight)) & MATMULS
    with pytest.raises(ValueError, match="activation must be one of .* got 'relu'"):
        linear(x, weight, bias, 'relu')


def linear_layer_grads(layer, x, create_graph=False):
    """The gradients of x, weight and bias of a loss of the outputs; with
    ``create_graph``, then of a loss on x's gradient (double backward)."""
    torch.manual_seed(1)
    out = layer(x)
    loss = (out.tanh() * torch.randn(out.shape).to(out.dtype)).sum()
    grads = torch.autograd.grad(loss, (x, layer.weight, layer.bias), create_graph=create_graph)
    if create_graph:
        grads = torch.autograd.grad(grads[0].pow(2).sum(), (x, layer.weight, layer.bias))
    return grads


@needs_onednn
@pytest.mark.parametrize('create_graph', [False, True])
def test_linear_layer_trains_through_onednn(create_graph):
    """Forward and input gradient in oneDNN, the weight's in aten's mm: the gradients of
    torch.nn.Linear in float64, also those of a double backward."""
    torch.manual_seed(0)
    layer, reference = Linear(24, 16), torch.nn.Linear(24, 16).double()
    reference.load_state_dict(layer.state_dict())
    full = torch.randn(4, 9, 24)
    for x in (full, full[:, :3], full.transpose(0, 1)):  # contiguous or not, as attention has
        x = x.detach().requires_grad_()
        with torch.profiler.profile() as prof:
            grads = linear_layer_grads(layer, x, create_graph)
        expected = linear_layer_grads(reference, x.detach().double().requires_grad_(),
                                      create_graph)
        for got, ref in zip(grads, expected, strict=True):
            assert got.dtype == torch.float32
            torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=1e-5)
        ops = Counter(event.name for event in prof.events())
        # the forward and an input gradient (with create_graph: the second backward's; the
        # first one's is aten's, differentiable)
        assert ops['mkldnn::_linear_pointwise'] == 2, ops
        assert not ops['aten::addmm'] and ops['aten::mm'] >= 1, ops


def test_linear_layer_trains_as_torch_linear_without_onednn():
    """Where oneDNN does not apply, aten's linear: nn.Linear's gradients, bit for bit."""
    torch.manual_seed(0)
    layer, reference = Linear(24, 16), torch.nn.Linear(24, 16)
    reference.load_state_dict(layer.state_dict())
    x = torch.randn(4, 7, 24, requires_grad=True)
    with torch.backends.mkldnn.flags(enabled=False):
        grads = linear_layer_grads(layer, x)
    for got, ref in zip(grads, linear_layer_grads(reference, x), strict=True):
        assert torch.equal(got, ref)


@needs_onednn
@pytest.mark.parametrize('build', BACKBONES)
def test_backbone_inference_runs_every_linear_in_onednn(build):
    """No aten matrix multiply by a linear layer's weight is left, and the outputs are those
    of the same backbone with oneDNN disabled (aten's linears)."""
    torch.manual_seed(0)
    model = build().eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.inference_mode():
        with torch.profiler.profile(record_shapes=True) as prof:
            out = model(x)
        with torch.backends.mkldnn.flags(enabled=False):
            expected = model(x)
    weights = {tuple(m.weight.shape[::-1]) for m in model.modules() if isinstance(m, Linear)}
    events = prof.events()
    assert sum(e.name == 'mkldnn::_linear_pointwise' for e in events) >= len(weights)
    assert not [e.input_shapes for e in events if e.name in ('aten::mm', 'aten::addmm')
                and tuple(e.input_shapes[-1]) in weights]
    for got, ref in zip(out, expected, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


@needs_onednn
@pytest.mark.parametrize('build', BACKBONES)
def test_backbone_training_runs_every_linear_in_onednn(build):
    """A training step: no aten matrix multiply by a linear layer's weight, forward or input
    gradient, and every gradient that of the same backbone with oneDNN disabled."""
    torch.manual_seed(0)
    model = build().train()
    x = torch.randn(2, 3, 64, 96)
    weights = [m.weight for m in model.modules() if isinstance(m, Linear)]
    shapes = {tuple(w.shape) for w in weights} | {tuple(w.shape[::-1]) for w in weights}

    def step():
        model.zero_grad()
        torch.manual_seed(1)
        loss = sum((out * torch.randn(out.shape)).sum() for out in model(x))
        loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    with torch.profiler.profile(record_shapes=True) as prof:
        grads = step()
    with torch.backends.mkldnn.flags(enabled=False):
        expected = step()
    events = prof.events()
    assert sum(e.name == 'mkldnn::_linear_pointwise' for e in events) >= 2 * len(weights)
    assert not [e.input_shapes for e in events if e.name in ('aten::mm', 'aten::addmm')
                and tuple(e.input_shapes[-1]) in shapes]
    assert grads.keys() == expected.keys()
    # Gradients that are zero in exact arithmetic, rounding noise in either run: PyramidTNT's
    # stem convolutions feed BatchNorm, which cancels their biases, and an attention bias over
    # a 1x1 grid adds one constant to every score of a softmax row.
    cancelled = {f'{name}.bias' for name, m in model.named_modules()
                 if isinstance(m, torch.nn.Conv2d) and name.startswith('stem.')}
    cancelled |= {name for name, p in model.named_parameters()
                  if name.endswith('attn_bias') and p.shape[-2:] == (1, 1)}
    for name, ref in expected.items():
        if name in cancelled:
            continue
        torch.testing.assert_close(grads[name], ref, rtol=1e-4,
                                   atol=1e-4 * ref.abs().max().item(), msg=name)
