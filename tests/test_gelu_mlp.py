"""The MLP's GELU kernels: the fused GELU backward against float64 math, and the MLP with it
(training gradients) and with oneDNN's fused linear + GELU (inference) against the plain MLP,
with the paths each takes."""
import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import profiled_ops
from tnt_backbone.models.layers import Mlp
from tnt_backbone.ops import HAS_GELU_KERNEL, gelu_backward

gelu_ops = importlib.import_module('tnt_backbone.ops.gelu')
linear_ops = importlib.import_module('tnt_backbone.ops.linear')


def reference(grad_act, h):
    """gelu(h) = h Phi(h) and grad_act * gelu'(h) = grad_act (Phi(h) + h phi(h)), in float64."""
    h, grad_act = h.double(), grad_act.double()
    cdf = 0.5 * torch.erfc(-h / math.sqrt(2))
    pdf = torch.exp(-0.5 * h * h) / math.sqrt(2 * math.pi)
    return h * cdf, grad_act * (cdf + h * pdf)


def inputs(numel, dtype=torch.float32, seed=0):
    """h spread over GELU's whole range (tails up to where Phi underflows fp32, and past it),
    and a gradient of gelu(h)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.cat([torch.linspace(-14, 14, 2001), torch.tensor([0., 1e-30, -1e-30, 20., -20.]),
                   torch.randn(numel, generator=g) * 3])[:numel]
    return torch.randn(numel, generator=g).to(dtype), h.to(dtype)


def assert_matches_reference(act, grad_h, grad_act, h, rtol):
    ref_act, ref_grad = reference(grad_act, h)
    # Relative to the value; tiny absolute slack for the far lower tail (|gelu| < 1e-12).
    torch.testing.assert_close(act.double(), ref_act, rtol=rtol, atol=1e-12)
    # gelu' crosses zero (h ~ -0.75), where Phi + h phi cancels in any fp32 evaluation:
    # there the error is relative to the incoming gradient.
    error = (grad_h.double() - ref_grad).abs()
    assert (error <= rtol * ref_grad.abs() + 1e-6 * grad_act.double().abs()).all(), \
        error.max().item()


def test_kernel_is_built():
    """Installs build it (setup.py); without it every backward silently takes aten's ops."""
    assert HAS_GELU_KERNEL
    with torch.no_grad():
        assert gelu_ops.gelu_backward_problem(torch.zeros(3), torch.zeros(3)) is None


# 1 element, less than / exactly / more than one 8-float vector, and enough for every thread
# (tasks of 4096 vectors) with a partial last vector.
@pytest.mark.parametrize('numel', [1, 7, 8, 13, 2 * 4096 * 8 + 5])
def test_kernel_matches_float64_math(numel):
    grad_act, h = inputs(numel)
    grad_h = grad_act.clone()
    with torch.no_grad():
        act, out = gelu_backward(grad_h, h)
    assert out is grad_h  # written in place
    assert act.dtype == h.dtype and act.shape == h.shape
    assert_matches_reference(act, grad_h, grad_act, h, rtol=1e-6)


def test_kernel_on_empty_and_strided_tensors():
    with torch.no_grad():
        act, grad_h = gelu_backward(torch.empty(0, 5), torch.empty(0, 5))
        assert act.shape == grad_h.shape == (0, 5)
        grad_act, h = inputs(37 * 11)
        h_t = h.view(37, 11).t()  # read through its strides
        assert not h_t.is_contiguous()
        act, grad_h = gelu_backward(grad_act.view(11, 37).clone(), h_t)
    assert_matches_reference(act, grad_h, grad_act.view(11, 37), h_t, rtol=1e-6)


# bf16 goes 16 elements (one 32-byte vector) at a time
@pytest.mark.parametrize('numel', [1, 15, 16, 3001])
def test_kernel_in_bf16_rounds_the_fp32_result(numel):
    """bf16 storage, fp32 math: the fp32 kernel's results on the same inputs, rounded to the
    nearest bf16 (even on ties), and so within bf16 rounding of float64's."""
    grad_act, h = inputs(numel, torch.bfloat16)
    with torch.no_grad():
        act, grad_h = gelu_backward(grad_act.clone(), h)
        act32, grad32 = gelu_backward(grad_act.float(), h.float())
    assert act.dtype == grad_h.dtype == torch.bfloat16
    assert torch.equal(act, act32.bfloat16()) and torch.equal(grad_h, grad32.bfloat16())
    assert_matches_reference(act, grad_h, grad_act, h, rtol=2 ** -8)


def test_fallback_computes_what_the_kernel_does(monkeypatch):
    grad_act, h = inputs(3001)
    with torch.no_grad():
        kernel = gelu_backward(grad_act.clone(), h)
        monkeypatch.setattr(gelu_ops, 'HAS_GELU_KERNEL', False)
        assert gelu_ops.gelu_backward_problem(grad_act, h) == \
            'the C++ extension tnt_backbone._ext is not built with gelu_backward_'
        fallback = gelu_backward(grad_act, h)
    assert fallback[1] is not grad_act
    # aten's erf has an absolute error of ~1e-7
    torch.testing.assert_close(fallback, kernel, rtol=1e-6, atol=2e-6)


def test_fallback_where_the_kernel_does_not_apply():
    grad_act, h = inputs(100)
    problem = gelu_ops.gelu_backward_problem
    with torch.no_grad():
        assert problem(grad_act.double(), h.double()) == \
            'torch.float64 gradient of torch.float64 h (fp32 or bf16 for both only)'
        assert problem(grad_act.half(), h) == \
            'torch.float16 gradient of torch.float32 h (fp32 or bf16 for both only)'
        strided = torch.randn(200)[::2]
        assert problem(strided, h) == 'a gradient of another shape than h, or not contiguous'
        act, grad_h = gelu_backward(strided, h)
        assert_matches_reference(act, grad_h, strided, h, rtol=2e-6)
    assert problem(grad_act, h) == 'the backward is being differentiated (create_graph)'


def test_kernel_says_what_is_wrong():
    op = torch.ops.tnt_backbone.gelu_backward_
    with pytest.raises(RuntimeError, match=r'grad \(\[3\], Float\) does not match h \(\[4\]'):
        op(torch.zeros(3), torch.zeros(4))
    with pytest.raises(RuntimeError, match='must be contiguous'):
        op(torch.zeros(4, 2).t(), torch.zeros(2, 4))
    with pytest.raises(RuntimeError, match="not implemented for 'Double'"):
        op(torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    h = torch.zeros(4)
    with pytest.raises(RuntimeError, match='refer to a single memory location'):
        op(h, h)


def test_mlp_gradients_match_float64_autograd():
    """The memory-saving backward (fused kernel) against autograd through the plain MLP."""
    torch.manual_seed(0)
    mlp = Mlp(24, 101)  # a hidden size that is not a multiple of the vector width
    x = torch.randn(3, 7, 24, requires_grad=True)
    weights = torch.randn(3, 7, 24)
    params = [x, *mlp.parameters()]
    grads = []
    ops = profiled_ops(lambda: grads.extend(
        torch.autograd.grad((mlp(x) * weights).sum(), params)))
    assert 'tnt_backbone::gelu_backward_' in ops and 'aten::gelu_backward' not in ops
    params64 = [p.detach().double().requires_grad_() for p in params]
    x64, w1, b1, w2, b2 = params64
    out64 = F.linear(F.gelu(F.linear(x64, w1, b1)), w2, b2)
    expected = torch.autograd.grad((out64 * weights.double()).sum(), params64)
    for grad, ref in zip(grads, expected):
        torch.testing.assert_close(grad.double(), ref, rtol=0, atol=1e-5 * ref.abs().max())


def test_mlp_second_derivatives_take_the_differentiable_path():
    """create_graph: the backward itself is differentiated, so aten's ops run in it."""
    torch.manual_seed(0)
    mlp = Mlp(6, 24)
    x = torch.randn(4, 6, requires_grad=True)
    grad_x, = torch.autograd.grad(mlp(x).pow(2).sum(), x, create_graph=True)
    hvp, = torch.autograd.grad(grad_x.sum(), x)
    x64 = x.detach().double().requires_grad_()
    w1, b1, w2, b2 = [p.detach().double() for p in mlp.parameters()]
    out64 = F.linear(F.gelu(F.linear(x64, w1, b1)), w2, b2)
    grad64, = torch.autograd.grad(out64.pow(2).sum(), x64, create_graph=True)
    hvp64, = torch.autograd.grad(grad64.sum(), x64)
    torch.testing.assert_close(hvp.double(), hvp64, rtol=1e-5, atol=1e-5)


def test_mlp_under_bf16_autocast_runs_the_kernel_in_bf16():
    torch.manual_seed(0)
    mlp = Mlp(24, 96)
    x = torch.randn(5, 24, requires_grad=True)

    def backward():
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = mlp(x)
        out.float().pow(2).sum().backward()

    assert 'tnt_backbone::gelu_backward_' in profiled_ops(backward)
    x64 = x.detach().double().requires_grad_()
    w1, b1, w2, b2 = [p.detach().double() for p in mlp.parameters()]
    F.linear(F.gelu(F.linear(x64, w1, b1)), w2, b2).pow(2).sum().backward()
    assert torch.cosine_similarity(x.grad.double().flatten(), x64.grad.flatten(), 0) > 0.999


def plain_mlp(mlp, x):
    hidden = mlp.drop(F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias)))
    return mlp.drop(F.linear(hidden, mlp.fc2.weight, mlp.fc2.bias))


@pytest.mark.parametrize('dtype,tol', [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_mlp_inference_fuses_gelu_into_the_first_linear(dtype, tol):
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip('no oneDNN bf16 on this CPU')
    torch.manual_seed(0)
    mlp = Mlp(24, 96).eval().to(dtype)
    x = torch.randn(2, 3, 7, 24).to(dtype)
    with torch.no_grad():
        assert linear_ops.linear_problem(x, mlp.fc1.weight) is None
        out = []
        ops = profiled_ops(lambda: out.append(mlp(x)))
        expected = plain_mlp(mlp, x)
    assert 'mkldnn::_linear_pointwise' in ops and 'aten::gelu' not in ops
    assert out[0].dtype == dtype
    torch.testing.assert_close(out[0], expected, rtol=tol, atol=tol)


def test_mlp_inference_with_dropout_in_training_mode():
    """No gradients but dropout active: the fused GELU, then dropout drawing the same masks."""
    mlp = Mlp(24, 96, drop=0.5).train()
    x = torch.randn(10, 24)
    with torch.no_grad():
        torch.manual_seed(1)
        out = mlp(x)
        torch.manual_seed(1)
        expected = plain_mlp(mlp, x)
    assert (out == 0).any()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def graph_targets(mlp, x, trace):
    """The names of the ops in the graph that ``trace`` ('jit', 'export' or 'compile') records
    for ``mlp(x)`` without gradients."""
    with torch.no_grad():
        if trace == 'jit':
            return {node.kind() for node in torch.jit.trace(mlp, x).inlined_graph.nodes()}
        if trace == 'export':
            graph = torch.export.export(mlp, (x, )).graph
            return {str(node.target) for node in graph.nodes}
        graphs = []
        torch._dynamo.reset()
        torch.compile(mlp, backend=lambda gm, _: graphs.append(gm.graph) or gm,
                      fullgraph=True)(x)
        return {str(node.target) for graph in graphs for node in graph.nodes}


@pytest.mark.parametrize('trace', ['jit', 'export', 'compile'])
def test_traced_graphs_keep_the_plain_ops(trace):
    """Exported graphs must hold ops other runtimes know; inductor fuses the GELU itself."""
    mlp = Mlp(24, 96).eval()
    targets = ' '.join(graph_targets(mlp, torch.randn(3, 24), trace))
    assert 'gelu' in targets and 'mkldnn' not in targets, targets
