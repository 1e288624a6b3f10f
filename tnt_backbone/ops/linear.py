"""Linear layers through oneDNN in CPU inference.

:func:`linear` runs ``linear(x, weight, bias)``, optionally followed by the MLPs' GELU (exact,
erf-based), as one oneDNN call (``mkldnn::_linear_pointwise``) where :func:`linear_problem`
finds nothing against it, and as aten's ops otherwise. oneDNN adds the bias and applies the
GELU as the matmul writes its output; aten's ``addmm`` first copies the bias into the output
(one more pass) and its fp32 GEMM (MKL) ran TNT-S's linear layers 5-30 % slower here (the
word layers' narrow ones most). There is no derivative of the oneDNN op, so training takes
aten's.
"""
import torch
import torch.nn.functional as F

from .kernel_limits import exporting

DTYPES = (torch.float32, torch.bfloat16)
ACTIVATIONS = (None, 'gelu')


def linear_problem(x, weight):
    """Why :func:`linear` cannot take oneDNN's linear, or None."""
    # First: under torch.compile, inductor fuses by itself and need not trace the rest.
    if torch.compiler.is_compiling():
        return 'torch.compile'
    if exporting():
        return 'exporting the model'
    if torch.is_grad_enabled():  # oneDNN's op has no derivative
        return 'gradients enabled'
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


def linear(x, weight, bias=None, activation=None):
    """``linear(x, weight, bias)``, then ``gelu`` if ``activation='gelu'``: in one oneDNN call
    where :func:`linear_problem` finds nothing against it, else through aten's ops."""
    if activation not in ACTIVATIONS:
        raise ValueError(f'linear: activation must be one of {ACTIVATIONS}, got {activation!r}')
    if linear_problem(x, weight) is None:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation or 'none', [],
                                                  'none' if activation else '')
    out = F.linear(x, weight, bias)
    return F.gelu(out) if activation else out
