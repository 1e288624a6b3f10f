"""The MLPs' GELU (exact, erf-based) backward fused on the CPU.

:func:`gelu_backward`: the recomputed ``gelu(h)`` and the gradient of ``h`` in one pass of the
C++ kernel ``torch.ops.tnt_backbone.gelu_backward_`` (``csrc/gelu.cpp``, built into
``tnt_backbone._ext`` by ``pip install -e .``), aten's two ops where it does not apply. (In
inference the GELU runs within the first linear: :func:`~tnt_backbone.ops.linear.linear`.)
"""
import torch
import torch.nn.functional as F

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

