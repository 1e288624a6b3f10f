"""Linear layers through oneDNN on the CPU, in inference and in training.

:func:`linear` runs ``linear(x, weight, bias)``, optionally followed by the MLPs' GELU (exact,
erf-based), through oneDNN's linear (``mkldnn::_linear_pointwise``) where
:func:`linear_problem` finds nothing against it, and through aten's ops otherwise. oneDNN adds
the bias and applies the GELU as the matmul writes its output; aten's ``addmm`` first copies
the bias into the output (one more pass) and its fp32 GEMM (MKL) ran TNT-S's linear layers
5-30 % slower here (the word layers' narrow ones most). oneDNN's op has no derivative: in
training :class:`OneDNNLinear` gives it one, in which the input's gradient is oneDNN's product
too (:func:`linear_grad_input`, 9-16 % faster than aten's ``mm`` at TNT-S's shapes) and the
weight's is aten's ``mm`` (oneDNN was not faster there).
"""
import torch
import torch.nn.functional as F

from .kernel_limits import exporting

DTYPES = (torch.float32, torch.bfloat16)
ACTIVATIONS = (None, 'gelu')


def linear_problem(x, weight):
    """Why oneDNN's linear cannot compute ``x`` by ``weight`` here, or None."""
    # First: under torch.compile, inductor fuses by itself and need not trace the rest.
    if torch.compiler.is_compiling():
        return 'torch.compile'
    if exporting():
        return 'exporting the model'
    if x.device.type != 'cpu' or weight.device.type != 'cpu':
        return f'{x.device.type} tensors'
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return 'torch without oneDNN (mkldnn), or oneDNN disabled'
    if torch.is_autocast_enabled('cpu'):  # the op has no autocast rule
        return 'CPU autocast'
    if x.dtype not in DTYPES or weight.dtype != x.dtype:
        return f'{x.dtype} input and {weight.dtype} weight (fp32 or bf16 for both only)'
    if x.dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 'no bf16 support in this CPU for oneDNN'
    return None


def _onednn_linear(x, weight, bias=None, activation=None):
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation or 'none', [],
                                              'none' if activation else '')


def linear_grad_input(grad, weight):
    """``grad @ weight``: a linear layer's input gradient from its output's, as one oneDNN
    call where :func:`linear_problem` finds nothing against it. Differentiable where the
    backward itself is (``create_graph``): then aten's ``matmul``."""
    if torch.is_grad_enabled() or linear_problem(grad, weight) is not None:
        return grad @ weight
    return _onednn_linear(grad, weight.t())


class OneDNNLinear(torch.autograd.Function):
    """``F.linear(x, weight, bias)`` through oneDNN, with the derivative that its op lacks.

    Keeps what aten's linear keeps (``x`` and ``weight``); the backward computes ``x``'s
    gradient with :func:`linear_grad_input` and the weight's and bias's with aten's ops, all
    of them differentiable where the backward is.
    """

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = linear_grad_input(grad, weight) if ctx.needs_input_grad[0] else None
        g = grad.reshape(-1, grad.shape[-1])
        grad_weight = g.t() @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        grad_bias = g.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None, activation=None):
    """``linear(x, weight, bias)``, then ``gelu`` if ``activation='gelu'``: through oneDNN
    where :func:`linear_problem` finds nothing against it (the GELU within the same call,
    unless gradients are needed), else through aten's ops."""
    if activation not in ACTIVATIONS:
        raise ValueError(f'linear: activation must be one of {ACTIVATIONS}, got {activation!r}')
    if linear_problem(x, weight) is not None:
        out = F.linear(x, weight, bias)
    elif torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                         for t in (x, weight, bias)):
        out = OneDNNLinear.apply(x, weight, bias)
    else:
        return _onednn_linear(x, weight, bias, activation)
    return F.gelu(out) if activation else out
