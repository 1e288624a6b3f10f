"""The MLPs' GELU (exact, erf-based) fused with its neighbours on the CPU.

:func:`gelu_backward`: the recomputed ``gelu(h)`` and the gradient of ``h`` in one pass of the
C++ kernel ``torch.ops.tnt_backbone.gelu_backward_`` (``csrc/gelu.cpp``, built into
``tnt_backbone._ext`` by ``pip install -e .``), aten's two ops where it does not apply.
:func:`linear_gelu`: ``gelu(linear(x))`` in one oneDNN call (the GELU applied as the matmul
writes its output) in inference, the two aten ops otherwise.
"""
import torch
import torch.nn.functional as F

from .kernel_limits import exporting

try:
    from tnt_backbone import _ext  # noqa: F401  (registers the operators)
except ImportError:
    pass

# False also where the extension was built before the kernel existed (rebuild it).
HAS_GELU_KERNEL = hasattr(torch.ops.tnt_backbone, 'gelu_backward_')
DTYPES = (torch.float32, torch.bfloat16)

if HAS_GELU_KERNEL:

    @torch.library.register_fake('tnt_backbone::gelu_backward_')
    def _gelu_backward_fake(grad, h):
        return torch.empty_like(h)


def gelu_backward_problem(grad_act, h):
    """Why the fused kernel cannot run :func:`gelu_backward` on these arguments, or None."""
    if not HAS_GELU_KERNEL:
        return 'the C++ extension tnt_backbone._ext is not built with gelu_backward_'
    if torch.is_grad_enabled():  # the kernel has no derivative of its own
        return 'the backward is being differentiated (create_graph)'
    if h.device.type != 'cpu' or grad_act.device.type != 'cpu':
        return f'{h.device.type} tensors'
    if h.dtype not in DTYPES or grad_act.dtype != h.dtype:
        return f'{grad_act.dtype} gradient of {h.dtype} h (fp32 or bf16 for both only)'
    if grad_act.shape != h.shape or not grad_act.is_contiguous():
        return 'a gradient of another shape than h, or not contiguous'
    return None


def gelu_backward(grad_act, h):
    """``gelu(h)`` and ``grad_act * gelu'(h)``: the forward recomputed from the kept
    pre-activation ``h``, and the gradient of ``h`` from that of ``gelu(h)``.

    The fused kernel, where :func:`gelu_backward_problem` finds nothing against it, computes
    both in one pass and writes the gradient into ``grad_act`` (which the caller must own);
    otherwise ``F.gelu`` and ``aten.gelu_backward`` do.

    Returns:
        tuple[Tensor, Tensor]: ``(gelu(h), grad of h)``, both shaped as ``h``.
    """
    if gelu_backward_problem(grad_act, h) is None:
        return torch.ops.tnt_backbone.gelu_backward_(grad_act, h), grad_act
    return F.gelu(h), torch.ops.aten.gelu_backward(grad_act, h)


def linear_gelu_problem(x, weight):
    """Why :func:`linear_gelu` cannot take oneDNN's fused linear + GELU, or None."""
    # First: under torch.compile, inductor fuses the GELU itself and need not trace the rest.
    if torch.compiler.is_compiling():
        return 'torch.compile'
    if exporting():
        return 'exporting the model'
    if torch.is_grad_enabled():  # oneDNN's fused op has no derivative
        return 'gradients enabled'
    if x.device.type != 'cpu' or weight.device.type != 'cpu':
        return f'{x.device.type} tensors'
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return 'torch without oneDNN (mkldnn), or oneDNN disabled'
    if torch.is_autocast_enabled('cpu'):  # the fused op has no autocast rule
        return 'CPU autocast'
    if x.dtype not in DTYPES or weight.dtype != x.dtype:
        return f'{x.dtype} input and {weight.dtype} weight (fp32 or bf16 for both only)'
    if x.dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return 'no bf16 support in this CPU for oneDNN'
    return None


def linear_gelu(x, weight, bias=None):
    """``gelu(linear(x, weight, bias))``: in one oneDNN call where :func:`linear_gelu_problem`
    finds nothing against it, else through ``F.linear`` and ``F.gelu``."""
    if linear_gelu_problem(x, weight) is None:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu', [], 'none')
    return F.gelu(F.linear(x, weight, bias))
