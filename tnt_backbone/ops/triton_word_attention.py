"""Word attention in Triton: the GPU counterpart of ``csrc/word_attention.cpp``.

``torch.ops.tnt_backbone.word_attention_triton(qkv, heads, scale)`` computes, for every sentence
and head, ``softmax(q k^T * scale) v``, reading q, k and v straight from the (T, 16, 3C) qkv
projection and writing the (T, 16, C) heads side by side, as the output projection reads them.
Its backward recomputes the softmax from qkv (the only tensor saved) and writes grad_qkv
(T, 16, 3C) in one pass. Both are torch custom ops with fake implementations and autograd, so
``torch.compile(fullgraph=True)`` traces through them.

A program solves one head of ``BLOCK_T`` sentences with batched 16 x 16 matrix products. The
programs of the heads of a sentence block are neighbours in the launch order, so the parts of
the same qkv rows that they read can come from L2 rather than from memory again. Arithmetic is
fp32 for every storage dtype, with IEEE fp32 products (no TF32), as in the CPU kernel: fp32
results match a float64 reference to 1e-5, and the one code path also runs in Triton's
interpreter, which cannot multiply bf16 matrices. Whether bf16/fp16 tensor-core products would
pay off at this size is for a GPU benchmark to tell.

With TRITON_INTERPRET=1 set before triton is imported, the kernels run in Triton's interpreter
on CPU tensors too (slow: for tests).
"""
import contextlib
import os
import re
import subprocess
import tempfile

import torch
import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction

from .kernel_limits import WORDS, qkv_problem

# How the kernels launch: elements of one (BLOCK_T, 16, head-dim) tile (enough sentences per
# program to keep its warps busy, few enough for the backward's ten tiles to stay in
# registers) and warps per program. Untuned: :func:`launch_config` lets a benchmark try others.
_LAUNCH = dict(tile_elements=2048, num_warps=4)
# tl.dot needs an inner dimension of at least 16 on GPUs.
_MIN_DOT_K = 16


@triton.jit
def _load_head(qkv_ptr, T, HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
               HEAD_DIM_PAD: tl.constexpr, BLOCK_T: tl.constexpr, WORDS: tl.constexpr):
    """This program's head in its BLOCK_T sentences: q, k, v as fp32 (BLOCK_T, WORDS,
    HEAD_DIM_PAD) tiles, the offsets of q in qkv (k and v are C and 2C further on) and of the
    head's columns in a (T, WORDS, C) tensor, and the mask of real sentences and channels."""
    C = HEADS * HEAD_DIM
    pid = tl.program_id(0)
    head = pid % HEADS
    sentence = (pid // HEADS) * BLOCK_T + tl.arange(0, BLOCK_T)[:, None, None]
    word = tl.arange(0, WORDS)[None, :, None]
    channel = tl.arange(0, HEAD_DIM_PAD)[None, None, :]
    row = sentence.to(tl.int64) * WORDS + word  # int64: T * 16 * 3C can pass 2**31
    column = head * HEAD_DIM + channel
    mask = (sentence < T) & (channel < HEAD_DIM)
    q_offsets = row * (3 * C) + column
    # Padded channels and sentences load as zeros: they add nothing to the scores, and their
    # results are masked off.
    q = tl.load(qkv_ptr + q_offsets, mask=mask, other=0.).to(tl.float32)
    k = tl.load(qkv_ptr + q_offsets + C, mask=mask, other=0.).to(tl.float32)
    v = tl.load(qkv_ptr + q_offsets + 2 * C, mask=mask, other=0.).to(tl.float32)
    return q, k, v, q_offsets, row * C + column, mask


@triton.jit
def _attention_weights(q, k, scale):
    """softmax over keys of q k^T * scale: (BLOCK_T, WORDS, WORDS), rows are queries."""
    # exp2 with log2(e) folded into the scale: one multiply per score.
    s = tl.dot(q, tl.permute(k, (0, 2, 1)), input_precision='ieee') * (scale * 1.4426950408889634)
    p = tl.exp2(s - tl.max(s, axis=2, keep_dims=True))
    return p / tl.sum(p, axis=2, keep_dims=True)


@triton.jit
def _forward_kernel(qkv_ptr, out_ptr, T, scale, HEADS: tl.constexpr, HEAD_DIM: tl.constexpr,
                    HEAD_DIM_PAD: tl.constexpr, BLOCK_T: tl.constexpr, WORDS: tl.constexpr):
    q, k, v, _, out_offsets, mask = _load_head(qkv_ptr, T, HEADS, HEAD_DIM, HEAD_DIM_PAD,
                                               BLOCK_T, WORDS)
    out = tl.dot(_attention_weights(q, k, scale), v, input_precision='ieee')
    tl.store(out_ptr + out_offsets, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(grad_ptr, qkv_ptr, grad_qkv_ptr, T, scale, HEADS: tl.constexpr,
                     HEAD_DIM: tl.constexpr, HEAD_DIM_PAD: tl.constexpr, BLOCK_T: tl.constexpr,
                     WORDS: tl.constexpr):
    C = HEADS * HEAD_DIM
    q, k, v, qkv_offsets, grad_offsets, mask = _load_head(qkv_ptr, T, HEADS, HEAD_DIM,
                                                          HEAD_DIM_PAD, BLOCK_T, WORDS)
    grad = tl.load(grad_ptr + grad_offsets, mask=mask, other=0.).to(tl.float32)
    p = _attention_weights(q, k, scale)
    grad_v = tl.dot(tl.permute(p, (0, 2, 1)), grad, input_precision='ieee')
    grad_p = tl.dot(grad, tl.permute(v, (0, 2, 1)), input_precision='ieee')
    # Softmax backward, times the scale: the gradient of the unscaled scores q k^T.
    grad_s = p * (grad_p - tl.sum(p * grad_p, axis=2, keep_dims=True)) * scale
    grad_q = tl.dot(grad_s, k, input_precision='ieee')
    grad_k = tl.dot(tl.permute(grad_s, (0, 2, 1)), q, input_precision='ieee')
    dtype = grad_qkv_ptr.dtype.element_ty
    tl.store(grad_qkv_ptr + qkv_offsets, grad_q.to(dtype), mask=mask)
    tl.store(grad_qkv_ptr + qkv_offsets + C, grad_k.to(dtype), mask=mask)
    tl.store(grad_qkv_ptr + qkv_offsets + 2 * C, grad_v.to(dtype), mask=mask)


# Set before triton is imported, TRITON_INTERPRET=1 makes every @triton.jit function, Triton's
# own reductions too, run in its interpreter, on CPU tensors as well.
INTERPRETED = isinstance(_forward_kernel, InterpretedFunction)


def _checked(qkv, heads, grad=None):
    """qkv, contiguous, once its shape, dtype, device and those of the output's gradient (for
    the backward) check out."""
    problem = qkv_problem(qkv, heads)
    if problem is None and grad is not None:
        expected = (qkv.shape[0], WORDS, qkv.shape[2] // 3)
        if grad.shape != expected:
            problem = f'grad of shape {tuple(grad.shape)}, not {expected} as qkv gives'
    if problem is not None:
        raise ValueError(f'word_attention_triton: {problem}')
    if qkv.device.type != 'cuda' and not (INTERPRETED and qkv.device.type == 'cpu'):
        raise ValueError(f'word_attention_triton runs on CUDA tensors, got {qkv.device} (CPU '
                         'tensors need TRITON_INTERPRET=1 set before triton is imported)')
    return qkv.contiguous()


@contextlib.contextmanager
def launch_config(tile_elements=None, num_warps=None):
    """Within the ``with`` block, the kernels launch with ``tile_elements`` per tile (a power of
    two; sentences per program = tile_elements / (16 x padded head dim), at least 1) and
    ``num_warps`` warps per program; None keeps the current value. Results are the same; only
    the speed changes (``tools/analysis/gpu_check.py`` times a few)."""
    new = dict(tile_elements=tile_elements, num_warps=num_warps)
    new = {key: value for key, value in new.items() if value is not None}
    for key, value in new.items():
        if not (isinstance(value, int) and value > 0 and value & (value - 1) == 0):
            raise ValueError(f'launch_config: {key} must be a power of two, got {value!r}')
    old = dict(_LAUNCH)
    _LAUNCH.update(new)
    try:
        yield
    finally:
        _LAUNCH.update(old)


def _constants(heads, head_dim):
    """The kernels' compile-time arguments for this head layout at the current launch
    settings."""
    head_dim_pad = max(_MIN_DOT_K, triton.next_power_of_2(head_dim))
    block_t = max(1, _LAUNCH['tile_elements'] // (WORDS * head_dim_pad))
    return dict(HEADS=heads, HEAD_DIM=head_dim, HEAD_DIM_PAD=head_dim_pad, BLOCK_T=block_t,
                WORDS=WORDS)


def _launch(kernel, qkv, heads, scale, *tensors):
    """Runs ``kernel(*tensors, T, scale, ...)`` over all sentences and heads of qkv."""
    T = qkv.shape[0]
    if T == 0:  # a grid of no programs is an error in Triton
        return
    constants = _constants(heads, qkv.shape[2] // (3 * heads))
    # Triton launches on the current CUDA device.
    device = torch.cuda.device(qkv.device) if qkv.is_cuda else contextlib.nullcontext()
    with device:
        kernel[(triton.cdiv(T, constants['BLOCK_T']) * heads, )](
            *tensors, T, scale, **constants, num_warps=_LAUNCH['num_warps'])


def compiled_resources(backward, dtype, heads, head_dim, capability=90):
    """What one program of the forward (or ``backward``) kernel uses on an NVIDIA GPU of
    compute ``capability`` (major * 10 + minor: 80 A100, 90 H100/H200) at the current launch
    settings, with no GPU needed: Triton compiles the kernel for that GPU ahead of time and
    the ``cuobjdump`` that comes with Triton reads the binary.

    Returns:
        dict: ``registers`` and ``stack_bytes`` per thread (a stack means spilled registers),
        ``shared_bytes``, ``num_warps``, ``sentences`` per program.
    """
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    if INTERPRETED:
        raise RuntimeError('compiled_resources: with TRITON_INTERPRET=1 set, Triton compiles '
                           'nothing')
    types = {torch.float32: 'fp32', torch.bfloat16: 'bf16', torch.float16: 'fp16'}
    if dtype not in types:
        raise ValueError(f'compiled_resources: {dtype} storage (fp32, bf16 or fp16 only)')
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), 'backends', 'nvidia', 'bin',
                             'cuobjdump')
    if not os.path.isfile(cuobjdump):
        raise RuntimeError(f'compiled_resources needs the NVIDIA backend of Triton, with its '
                           f'ptxas and cuobjdump; {cuobjdump} is missing')
    kernel = _backward_kernel if backward else _forward_kernel
    constants = _constants(heads, head_dim)
    # Every pointer has the storage dtype (the backward casts grad to qkv's).
    pointer = '*' + types[dtype]
    signature = {name: 'constexpr' if name in constants else pointer if name.endswith('_ptr')
                 else 'i32' if name == 'T' else 'fp32' for name in kernel.arg_names}
    binary = triton.compile(ASTSource(kernel, signature, constants),
                            target=GPUTarget('cuda', capability, 32),
                            options=dict(num_warps=_LAUNCH['num_warps']))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'kernel.cubin')
        with open(path, 'wb') as f:
            f.write(binary.asm['cubin'])
        usage = subprocess.run([cuobjdump, '--dump-resource-usage', path], check=True,
                               capture_output=True, text=True).stdout
    fields = dict(re.findall(r'\b(REG|STACK|SHARED):(\d+)', usage))
    return dict(registers=int(fields['REG']), stack_bytes=int(fields['STACK']),
                shared_bytes=binary.metadata.shared, num_warps=_LAUNCH['num_warps'],
                sentences=constants['BLOCK_T'])


@torch.library.custom_op('tnt_backbone::word_attention_triton', mutates_args=())
def word_attention_triton(qkv: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """(T, 16, 3C) qkv -> (T, 16, C) attention output, heads concatenated."""
    qkv = _checked(qkv, heads)
    out = qkv.new_empty(qkv.shape[0], WORDS, qkv.shape[2] // 3)
    _launch(_forward_kernel, qkv, heads, scale, qkv, out)
    return out


@torch.library.custom_op('tnt_backbone::word_attention_triton_backward', mutates_args=())
def word_attention_triton_backward(grad: torch.Tensor, qkv: torch.Tensor, heads: int,
                                   scale: float) -> torch.Tensor:
    """grad of the (T, 16, C) output -> grad of the (T, 16, 3C) qkv."""
    qkv = _checked(qkv, heads, grad)
    grad_qkv = qkv.new_empty(qkv.shape)
    _launch(_backward_kernel, qkv, heads, scale, grad.to(qkv.dtype).contiguous(), qkv,
            grad_qkv)
    return grad_qkv


@word_attention_triton.register_fake
def _(qkv, heads, scale):
    return qkv.new_empty(qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3)


@word_attention_triton_backward.register_fake
def _(grad, qkv, heads, scale):
    return qkv.new_empty(qkv.shape)


def _setup_context(ctx, inputs, output):
    qkv, ctx.heads, ctx.scale = inputs
    ctx.save_for_backward(qkv)


def _backward(ctx, grad):
    qkv, = ctx.saved_tensors
    return word_attention_triton_backward(grad, qkv, ctx.heads, ctx.scale), None, None


word_attention_triton.register_autograd(_backward, setup_context=_setup_context)
