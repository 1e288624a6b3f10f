"""The LayerNorm backward kernel against float64 autograd, the paths layer_norm takes, and
the backbones training through it."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from conftest import profiled_ops
from tnt_backbone.models import TNT, PyramidTNT
from tnt_backbone.models.layers import LayerNorm
from tnt_backbone.ops import HAS_LAYER_NORM_KERNEL, layer_norm

ln_ops = importlib.import_module('tnt_backbone.ops.layer_norm')
pytestmark = pytest.mark.skipif(not HAS_LAYER_NORM_KERNEL, reason='C++ extension not built')


def float64_grads(x, weight, bias, grad):
    x, weight, bias = (t.detach().double().requires_grad_() for t in (x, weight, bias))
    F.layer_norm(x, weight.shape, weight, bias, 1e-5).backward(grad.double())
    return x.grad, weight.grad, bias.grad


@pytest.mark.parametrize('shape', [(3001, 24), (2, 1000, 12), (5, 7, 40), (300, 384), (1, 5),
                                   (0, 24)])
@pytest.mark.parametrize('transposed', [False, True])
def test_gradients_match_float64_autograd(shape, transposed):
    """Widths with and without a vector tail, row counts that do not split evenly over the
    threads (and none), inputs that are not contiguous."""
    torch.manual_seed(0)
    C = shape[-1]
    x = torch.randn(*shape) * 3 + 1
    if transposed:
        x = x.transpose(0, -2).contiguous().transpose(0, -2) if x.dim() > 1 else x
    x.requires_grad_()
    weight, bias = (torch.randn(C, requires_grad=True) for _ in range(2))
    out = []
    ops = profiled_ops(lambda: out.append(layer_norm(x, (C,), weight, bias)))
    assert 'aten::native_layer_norm' in ops
    grad = torch.randn(shape)
    ops = profiled_ops(lambda: out[0].backward(grad))
    assert 'tnt_backbone::layer_norm_backward' in ops
    assert 'aten::native_layer_norm_backward' not in ops
    torch.testing.assert_close(out[0], F.layer_norm(x, (C,), weight, bias), rtol=0, atol=0)
    grad_x, grad_weight, grad_bias = float64_grads(x, weight, bias, grad)
    torch.testing.assert_close(x.grad.double(), grad_x, rtol=1e-5, atol=1e-5)
    # the weight and bias gradients sum over all rows: within fp32's rounding of those sums
    x64, grad64 = x.detach().double().reshape(-1, C), grad.double().reshape(-1, C)
    normed = F.layer_norm(x64, (C,), eps=1e-5)
    for got, expected, terms in ((weight.grad, grad_weight, grad64 * normed),
                                 (bias.grad, grad_bias, grad64)):
        assert ((got.double() - expected).abs() <= 1e-6 * terms.abs().sum(0) + 1e-7).all()


def test_layer_norm_takes_aten_where_the_kernel_does_not_apply():
    problem = ln_ops.layer_norm_problem
    x, weight, bias = torch.randn(4, 24), torch.randn(24), torch.randn(24)
    with torch.no_grad():
        assert problem(x, (24,), weight, bias) == 'no gradients'
    assert problem(x, (24,), None, bias) == \
        'no weight or bias, or a norm over more than the last dim'
    assert problem(x.view(4, 2, 12), (2, 12), weight.view(2, 12), bias.view(2, 12)) == \
        'no weight or bias, or a norm over more than the last dim'
    assert problem(x.bfloat16(), (24,), weight, bias) == \
        'torch.bfloat16 input and torch.float32 weight (fp32 only)'
    assert problem(x, (24,), weight, bias) is None
    x = x.bfloat16().requires_grad_()
    ops = profiled_ops(lambda: layer_norm(x, (24,), weight, bias).float().sum().backward())
    assert 'aten::native_layer_norm_backward' in ops
    assert 'tnt_backbone::layer_norm_backward' not in ops


def test_under_bf16_autocast_an_fp32_input_takes_the_kernel():
    """Autocast leaves LayerNorm of fp32 inputs in fp32, the kernel's dtype."""
    torch.manual_seed(0)
    norm = LayerNorm(24)
    x = torch.randn(50, 24, requires_grad=True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = norm(x)
        expected = F.layer_norm(x, (24,), norm.weight, norm.bias)
    assert out.dtype == expected.dtype == torch.float32
    grad = torch.randn(50, 24)
    assert 'tnt_backbone::layer_norm_backward' in profiled_ops(lambda: out.backward(grad))
    torch.testing.assert_close(x.grad.double(),
                               float64_grads(x, norm.weight, norm.bias, grad)[0],
                               rtol=1e-5, atol=1e-5)


def test_the_kernel_names_bad_input():
    x = torch.randn(4, 24, dtype=torch.float64)
    with pytest.raises(RuntimeError, match='takes float32 CPU tensors, got Double'):
        torch.ops.tnt_backbone.layer_norm_backward(x, x, x[:, 0], x[:, 0], x[0])
    x = torch.randn(4, 24)
    with pytest.raises(RuntimeError, match='do not match'):
        torch.ops.tnt_backbone.layer_norm_backward(x, x, x[:, 0], x[:, 0], x[0, :12])


@pytest.mark.parametrize('build', [
    lambda: TNT(arch='tiny', img_size=64, out_indices=(1, 3), drop_path_rate=0.1),
    lambda: TNT(arch='small', layout='legacy', img_size=64, out_type='cls_token',
                out_indices=(-1,)),
    lambda: PyramidTNT(arch='tiny', img_size=64, out_indices=(0, 3))])
def test_backbones_train_through_the_kernel(build, monkeypatch):
    """Every norm of a training step takes the kernel, and the gradients are those of the same
    backbone on aten's LayerNorm."""
    torch.manual_seed(0)
    model = build().train()
    x = torch.randn(2, 3, 64, 96)

    def grads():
        torch.manual_seed(1)  # the same drop-path draws
        out = model(x)
        sum(o.pow(2).mean() for o in out).backward()
        got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return got

    with torch.profiler.profile() as prof:
        fused = grads()
    events = prof.events()
    assert not [e for e in events if e.name == 'aten::native_layer_norm_backward']
    norms = [m for m in model.modules() if isinstance(m, LayerNorm)]
    assert sum(e.name == 'tnt_backbone::layer_norm_backward' for e in events) >= len(norms) > 0
    monkeypatch.setattr(ln_ops, 'layer_norm_problem', lambda *args: 'aten, for comparison')
    plain = grads()
    assert fused.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(fused[name], plain[name], rtol=1e-4, atol=1e-5, msg=name)
