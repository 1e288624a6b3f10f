"""Attention over the words of each sentence, with a fused kernel per device: C++ on the CPU
(``csrc/``), Triton on CUDA (:mod:`.triton_word_attention`).

``tnt_backbone._ext`` is built by ``pip install -e .`` (``setup.py``); importing it registers
``torch.ops.tnt_backbone.word_attention`` and its backward. The Triton kernel needs triton,
which CUDA builds of torch bring along. Wherever the device's kernel does not apply (not built
or no triton, another device, sentences of other than 16 words, head dims over 64, other
dtypes than fp32/bf16/fp16, attention dropout, model export), :func:`word_attention` computes
the same function with :func:`torch.nn.functional.scaled_dot_product_attention`.
"""
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from .kernel_limits import exporting, qkv_problem

try:
    from tnt_backbone import _ext  # noqa: F401  (registers the operators)
    HAS_WORD_ATTENTION_KERNEL = True
except ImportError:
    HAS_WORD_ATTENTION_KERNEL = False

try:
    from . import triton_word_attention  # noqa: F401  (registers the operators)
    HAS_TRITON = True
except ModuleNotFoundError as error:
    if error.name != 'triton':
        raise
    HAS_TRITON = False

# The fused kernel of each device type.
DEVICE_KERNELS = {'cpu': 'cpp', 'cuda': 'triton'}
IMPLS = (None, 'sdpa', 'kernel', 'triton')
_PATH_NAMES = {'cpp': 'the fused C++ kernel', 'triton': 'the Triton kernel', 'sdpa': 'SDPA'}
_logged_paths = set()

if HAS_WORD_ATTENTION_KERNEL:

    @torch.library.register_fake('tnt_backbone::word_attention')
    def _word_attention_fake(qkv, heads, scale):
        return qkv.new_empty(qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3)

    @torch.library.register_fake('tnt_backbone::word_attention_backward')
    def _word_attention_backward_fake(grad, qkv, heads, scale):
        return torch.empty_like(qkv)

    def _setup_context(ctx, inputs, output):
        qkv, ctx.heads, ctx.scale = inputs
        ctx.save_for_backward(qkv)

    def _backward(ctx, grad):
        qkv, = ctx.saved_tensors
        grad_qkv = torch.ops.tnt_backbone.word_attention_backward(grad, qkv, ctx.heads, ctx.scale)
        return grad_qkv, None, None

    torch.library.register_autograd('tnt_backbone::word_attention', _backward,
                                    setup_context=_setup_context)


def _kernel_problem(kernel, qkv, num_heads, dropout_p):
    """Why ``kernel`` ('cpp', 'triton', or None where the device has none) cannot compute
    these arguments, or None when it can."""
    if kernel is None:
        return f'no fused kernel for {qkv.device.type} tensors'
    if kernel == 'cpp' and not HAS_WORD_ATTENTION_KERNEL:
        return 'the C++ extension tnt_backbone._ext is not built'
    if kernel == 'triton' and not HAS_TRITON:
        return 'triton is not installed'
    if dropout_p:
        return 'attention dropout'
    return qkv_problem(qkv, num_heads)


def select_path(qkv, num_heads, dropout_p=0.):
    """What :func:`word_attention` runs by default, and why: ``('cpp', None)`` on CPU and
    ``('triton', None)`` on CUDA tensors where that device's fused kernel applies, else
    ``('sdpa', reason)``. Exporting (``torch.export``/ONNX, TorchScript tracing) always takes
    SDPA, which ONNX and other runtimes know."""
    if exporting():
        return 'sdpa', 'exporting the model'
    kernel = DEVICE_KERNELS.get(qkv.device.type)
    problem = _kernel_problem(kernel, qkv, num_heads, dropout_p)
    return ('sdpa', problem) if problem else (kernel, None)


def _log_once(device_type, path, why):
    if (device_type, path) not in _logged_paths:
        _logged_paths.add((device_type, path))
        print_log(f'word attention on {device_type} tensors: {_PATH_NAMES[path]}'
                  + (f' ({why})' if why else ''), logger='current')


def word_attention(qkv, num_heads, scale, dropout_p=0., impl=None):
    """Multi-head self-attention within each sentence, from its fused qkv projection.

    Args:
        qkv (Tensor): (T, n, 3C): per word, ``cat([q, k, v])``, each of ``num_heads`` heads of
            ``C // num_heads`` channels, as :class:`torch.nn.Linear` ``(C, 3C)`` gives them.
        num_heads (int): Number of heads.
        scale (float): Factor on the q.k scores.
        dropout_p (float): Dropout on the attention weights (use 0 in eval).
        impl (str, optional): None: as :func:`select_path` decides (logged once per device
            type and path). ``'sdpa'``: SDPA. ``'kernel'``: the device's fused kernel (C++ on
            CPU, Triton on CUDA). ``'triton'``: the Triton kernel (CPU tensors too, in
            Triton's interpreter, when TRITON_INTERPRET=1 was set before triton's import).
            A forced kernel that cannot compute the arguments is an error that says why.

    Returns:
        Tensor: (T, n, C), heads concatenated.
    """
    if impl is None:
        path, why = select_path(qkv, num_heads, dropout_p)
    elif impl == 'sdpa':
        path, why = 'sdpa', "impl='sdpa'"
    elif impl in ('kernel', 'triton'):
        path = DEVICE_KERNELS.get(qkv.device.type) if impl == 'kernel' else 'triton'
        problem = _kernel_problem(path, qkv, num_heads, dropout_p)
        if problem:
            raise ValueError(f'word_attention(impl={impl!r}): {problem}')
        why = f'impl={impl!r}'
    else:
        raise ValueError(f'word_attention: impl must be one of {IMPLS}, got {impl!r}')
    if not torch.compiler.is_compiling():  # logging would break the traced graph
        _log_once(qkv.device.type, path, why)
    if path == 'cpp':
        return torch.ops.tnt_backbone.word_attention(qkv, num_heads, scale)
    if path == 'triton':
        return torch.ops.tnt_backbone.word_attention_triton(qkv, num_heads, scale)
    T, n, _ = qkv.shape
    q, k, v = qkv.unflatten(-1, (3, num_heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).reshape(T, n, -1)
