"""What the fused kernels take: the word-attention ones (the C++ one on CPU, the Triton one on
CUDA) sentences of 16 words, head dims up to 64, fp32/bf16/fp16 storage; none of them an export."""
import torch

WORDS = 16
MAX_HEAD_DIM = 64
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def exporting():
    """Whether the model is being exported (``torch.export``, ONNX, TorchScript tracing): the
    exported graph must keep to ops that other runtimes know."""
    return (torch.compiler.is_exporting() or torch.jit.is_tracing()
            or torch.onnx.is_in_onnx_export())


def qkv_problem(qkv, num_heads):
    """Why the fused kernels cannot take this (T, 16, 3C) qkv for ``num_heads`` heads, or None
    when they can."""
    # Only sizes fixed per layer in the messages: torch.compile traces this with T symbolic.
    if qkv.dim() != 3:
        return f'qkv of {qkv.dim()} dims, not (T, {WORDS}, 3C)'
    if qkv.shape[1] != WORDS:
        return f'sentences of {qkv.shape[1]} words, not {WORDS}'
    if num_heads <= 0 or qkv.shape[2] % (3 * num_heads):
        return f'qkv width {qkv.shape[2]} is not 3 * heads * head_dim for {num_heads} heads'
    head_dim = qkv.shape[2] // (3 * num_heads)
    if head_dim > MAX_HEAD_DIM:
        return f'head dim {head_dim} over {MAX_HEAD_DIM}'
    if qkv.dtype not in DTYPES:
        return f'{qkv.dtype} storage (fp32, bf16 and fp16 only)'
    return None
