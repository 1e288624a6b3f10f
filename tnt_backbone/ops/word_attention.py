"""Attention over the words of each sentence, with a fused CPU kernel (``csrc/``).

``tnt_backbone._ext`` is built by ``pip install -e .`` (``setup.py``); importing it registers
``torch.ops.tnt_backbone.word_attention`` and its backward. Wherever the kernel does not apply
(no build, a GPU tensor, sentences of other than 16 words, head dims over 64, attention
dropout, model export), :func:`word_attention` computes the same function with
:func:`torch.nn.functional.scaled_dot_product_attention`.
"""
import torch
import torch.nn.functional as F

try:
    from tnt_backbone import _ext  # noqa: F401  (registers the operators)
    HAS_WORD_ATTENTION_KERNEL = True
except ImportError:
    HAS_WORD_ATTENTION_KERNEL = False

KERNEL_WORDS = 16
KERNEL_MAX_HEAD_DIM = 64
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)

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


def kernel_applies(qkv, num_heads, dropout_p=0.):
    """Whether :func:`word_attention` runs the fused kernel for these arguments. Not while
    exporting (``torch.export``/ONNX, TorchScript tracing): the exported graph takes the
    SDPA path, which ONNX and other runtimes know."""
    exporting = (torch.compiler.is_exporting() or torch.jit.is_tracing()
                 or torch.onnx.is_in_onnx_export())
    return (HAS_WORD_ATTENTION_KERNEL and not exporting and qkv.device.type == 'cpu'
            and dropout_p == 0.
            and qkv.dtype in KERNEL_DTYPES and qkv.shape[1] == KERNEL_WORDS
            and qkv.shape[2] // (3 * num_heads) <= KERNEL_MAX_HEAD_DIM)


def word_attention(qkv, num_heads, scale, dropout_p=0.):
    """Multi-head self-attention within each sentence, from its fused qkv projection.

    Args:
        qkv (Tensor): (T, n, 3C): per word, ``cat([q, k, v])``, each of ``num_heads`` heads of
            ``C // num_heads`` channels, as :class:`torch.nn.Linear` ``(C, 3C)`` gives them.
        num_heads (int): Number of heads.
        scale (float): Factor on the q.k scores.
        dropout_p (float): Dropout on the attention weights (use 0 in eval).

    Returns:
        Tensor: (T, n, C), heads concatenated.
    """
    if kernel_applies(qkv, num_heads, dropout_p):
        return torch.ops.tnt_backbone.word_attention(qkv, num_heads, scale)
    T, n, _ = qkv.shape
    q, k, v = qkv.unflatten(-1, (3, num_heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    return out.transpose(1, 2).reshape(T, n, -1)
