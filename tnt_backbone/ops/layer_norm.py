"""LayerNorm over the last dim with this package's CPU backward
(``torch.ops.tnt_backbone.layer_norm_backward``, ``csrc/layer_norm.cpp``).

aten's CPU backward lets two threads sum their weight and bias gradients into the same cache
lines wherever the channels are not a whole number of lines, as the word layers' 12, 24 and
40 are: the kernel here gives each thread lines of its own, and ran 3x faster at TNT-S's words
(25088 x 24) and 1.4x at its sentences (1576 x 384) on two threads. The forward is aten's.
Where it does not apply (see :func:`layer_norm_problem`), :func:`layer_norm` is
``F.layer_norm``.
"""
import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .kernel_limits import exporting

try:
    from tnt_backbone import _ext  # noqa: F401  (registers the operators)
except ImportError:
    pass

# False also where the extension was built before the kernel existed (rebuild it).
HAS_LAYER_NORM_KERNEL = hasattr(torch.ops.tnt_backbone, 'layer_norm_backward')


class _LayerNorm(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        out, mean, rstd = torch.native_layer_norm(x, weight.shape, weight, bias, eps)
        ctx.save_for_backward(x, mean, rstd, weight)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        grad_x, grad_weight, grad_bias = torch.ops.tnt_backbone.layer_norm_backward(
            grad, *ctx.saved_tensors)
        return grad_x, grad_weight, grad_bias, None


def layer_norm_problem(x, normalized_shape, weight, bias):
    """Why :func:`layer_norm` cannot take the fused backward, or None."""
    if not HAS_LAYER_NORM_KERNEL:
        return 'the C++ extension tnt_backbone._ext is not built with layer_norm_backward'
    if torch.compiler.is_compiling():  # inductor generates its own
        return 'torch.compile'
    if exporting():
        return 'exporting the model'
    if not torch.is_grad_enabled():
        return 'no gradients'
    if weight is None or bias is None or len(normalized_shape) != 1:
        return 'no weight or bias, or a norm over more than the last dim'
    if any(t.device.type != 'cpu' for t in (x, weight, bias)):
        return f'{x.device.type} tensors'
    if any(t.dtype != torch.float32 for t in (x, weight, bias)):
        return f'{x.dtype} input and {weight.dtype} weight (fp32 only)'
    return None


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """``F.layer_norm(x, normalized_shape, weight, bias, eps)``, with the fused CPU backward
    where :func:`layer_norm_problem` finds nothing against it."""
    if layer_norm_problem(x, normalized_shape, weight, bias) is None:
        return _LayerNorm.apply(x, weight, bias, eps)
    return F.layer_norm(x, normalized_shape, weight, bias, eps)
