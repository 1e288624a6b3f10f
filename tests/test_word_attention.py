"""The fused word-attention CPU kernel against attention computed another way, and how
:func:`word_attention` picks its path."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.models.layers import Attention, WordAttention
from tnt_backbone.ops import HAS_WORD_ATTENTION_KERNEL, select_path, word_attention

dispatch = importlib.import_module('tnt_backbone.ops.word_attention')


def reference_attention(qkv, heads, scale):
    """Textbook softmax(q k^T * scale) v per head, in float64: (T, n, 3C) -> (T, n, C)."""
    T, n, _ = qkv.shape
    q, k, v = qkv.double().unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
    out = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v
    return out.transpose(1, 2).reshape(T, n, -1)


def test_kernel_is_built():
    """Installs build it (setup.py); without it every CPU run silently takes the slow path."""
    assert HAS_WORD_ATTENTION_KERNEL
    assert select_path(torch.zeros(1, 16, 72), 4) == ('cpp', None)


@pytest.mark.parametrize('T,heads,head_dim', [(1, 2, 6), (37, 4, 6), (300, 4, 10), (5, 1, 64)])
def test_kernel_matches_reference_values_and_gradients(T, heads, head_dim):
    torch.manual_seed(T)
    C = heads * head_dim
    scale = head_dim ** -0.5
    qkv64 = (torch.randn(T, 16, 3 * C, dtype=torch.float64) * 3).requires_grad_()
    grad = torch.randn(T, 16, C, dtype=torch.float64)
    ref = reference_attention(qkv64, heads, scale)
    ref_grad, = torch.autograd.grad(ref, qkv64, grad)

    qkv = qkv64.detach().float().requires_grad_()
    assert select_path(qkv, heads) == ('cpp', None)
    out = word_attention(qkv, heads, scale)
    out.backward(grad.float())
    assert out.shape == (T, 16, C) and out.dtype == torch.float32
    # fp32 accuracy: a few units of float32 rounding at the magnitude of the values.
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-6 * ref.abs().max().item())
    torch.testing.assert_close(qkv.grad.double(), ref_grad, rtol=0,
                               atol=2e-6 * ref_grad.abs().max().item())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_kernel_in_reduced_precision_keeps_the_dtype(dtype):
    torch.manual_seed(0)
    qkv = torch.randn(20, 16, 72)
    out = word_attention(qkv.to(dtype), 4, 6 ** -0.5)
    assert out.dtype == dtype
    ref = reference_attention(qkv.to(dtype), 4, 6 ** -0.5)  # same rounded inputs
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-2)


def test_kernel_reads_non_contiguous_qkv():
    torch.manual_seed(0)
    wide = torch.randn(8, 16, 100)
    qkv = wide[..., 10:82]
    assert not qkv.is_contiguous()
    torch.testing.assert_close(word_attention(qkv, 4, 0.4).double(),
                               reference_attention(qkv, 4, 0.4), rtol=0, atol=1e-5)


def test_fallback_paths_compute_the_same_function():
    """Where the kernel does not apply (float64, other word counts, dropout), SDPA runs."""
    torch.manual_seed(0)
    qkv = torch.randn(6, 16, 36, dtype=torch.float64)
    assert select_path(qkv, 3) == ('sdpa', 'torch.float64 storage (fp32, bf16 and fp16 only)')
    torch.testing.assert_close(word_attention(qkv, 3, 0.5), reference_attention(qkv, 3, 0.5))
    nine_words = torch.randn(6, 9, 36)
    assert select_path(nine_words, 3) == ('sdpa', 'sentences of 9 words, not 16')
    torch.testing.assert_close(word_attention(nine_words, 3, 0.5).double(),
                               reference_attention(nine_words, 3, 0.5), rtol=0, atol=1e-5)
    assert select_path(qkv.float(), 3, dropout_p=0.1) == ('sdpa', 'attention dropout')
    assert select_path(torch.randn(6, 16, 36, device='meta'), 3) == (
        'sdpa', 'no fused kernel for meta tensors')
    dropped = word_attention(qkv.float(), 3, 0.5, dropout_p=0.5)
    assert dropped.shape == (6, 16, 12) and torch.isfinite(dropped).all()


def test_operator_registration():
    """Schema, fake (meta) implementation and autograd registration agree (torch.compile
    traces the operator through them)."""
    torch.manual_seed(0)
    qkv = torch.randn(4, 16, 36, requires_grad=True)
    torch.library.opcheck(torch.ops.tnt_backbone.word_attention.default, (qkv, 3, 0.5),
                          test_utils=('test_schema', 'test_autograd_registration',
                                      'test_faketensor'))


def test_bad_qkv_is_rejected_with_a_clear_error():
    with pytest.raises(RuntimeError, match=r'shape \(T, 16, 3C\)'):
        torch.ops.tnt_backbone.word_attention(torch.zeros(2, 9, 36), 3, 0.5)
    with pytest.raises(RuntimeError, match='not 3 \\* heads \\* head_dim'):
        torch.ops.tnt_backbone.word_attention(torch.zeros(2, 16, 35), 3, 0.5)


@pytest.mark.parametrize('qkv_bias', [False, True])
def test_word_attention_module_equals_the_outer_attention_module(qkv_bias):
    """Same parameters, same function: the fused word path in fp32 against the SDPA path of
    Attention run in float64."""
    torch.manual_seed(0)
    words = WordAttention(24, 4, qkv_bias=qkv_bias)
    with torch.no_grad():
        for p in words.parameters():
            p.normal_(0, 0.3)
    sdpa = Attention(24, 4, qkv_bias=qkv_bias).double()
    sdpa.load_state_dict(words.state_dict())
    x = torch.randn(10, 16, 24, dtype=torch.float64, requires_grad=True)
    a, b = words(x.float()), sdpa(x)
    torch.testing.assert_close(a.double(), b, rtol=0, atol=2e-6 * b.abs().max().item())
    ga = torch.autograd.grad(a.sin().sum(), [x, words.qkv.weight])
    gb = torch.autograd.grad(b.sin().sum(), [x, sdpa.qkv.weight])
    for g, ref in zip(ga, gb):
        torch.testing.assert_close(g.double(), ref, rtol=0, atol=2e-6 * ref.abs().max().item())


def test_impl_forces_a_path_or_says_why_it_cannot():
    torch.manual_seed(0)
    qkv = torch.randn(5, 16, 36)
    ref = reference_attention(qkv, 3, 0.5)
    for impl in ('sdpa', 'kernel'):
        torch.testing.assert_close(word_attention(qkv, 3, 0.5, impl=impl).double(), ref,
                                   rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="impl='kernel'\\): attention dropout"):
        word_attention(qkv, 3, 0.5, dropout_p=0.1, impl='kernel')
    with pytest.raises(ValueError, match="impl='kernel'\\): sentences of 9 words, not 16"):
        word_attention(torch.randn(5, 9, 36), 3, 0.5, impl='kernel')
    with pytest.raises(ValueError, match="impl must be one of .*'triton'\\), got 'cuda'"):
        word_attention(qkv, 3, 0.5, impl='cuda')


def test_kernel_missing_is_an_error_only_when_forced(monkeypatch):
    monkeypatch.setattr(dispatch, 'HAS_WORD_ATTENTION_KERNEL', False)
    qkv = torch.randn(5, 16, 36)
    assert select_path(qkv, 3) == ('sdpa', 'the C++ extension tnt_backbone._ext is not built')
    torch.testing.assert_close(word_attention(qkv, 3, 0.5).double(),
                               reference_attention(qkv, 3, 0.5), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match='tnt_backbone._ext is not built'):
        word_attention(qkv, 3, 0.5, impl='kernel')


def test_path_is_logged_once_per_device_and_path(monkeypatch):
    messages = []
    monkeypatch.setattr(dispatch, 'print_log', lambda msg, logger: messages.append(msg))
    monkeypatch.setattr(dispatch, '_logged_paths', set())
    qkv = torch.randn(5, 16, 36)
    for _ in range(3):
        word_attention(qkv, 3, 0.5)
        word_attention(qkv, 3, 0.5, dropout_p=0.1)
    assert messages == ['word attention on cpu tensors: the fused C++ kernel',
                        'word attention on cpu tensors: SDPA (attention dropout)']


def test_dispatch_compiles_into_one_graph():
    """torch.compile(fullgraph=True): choosing and logging the path breaks no graph."""
    torch.manual_seed(0)
    qkv = torch.randn(7, 16, 72, requires_grad=True)
    compiled = torch.compile(lambda x: word_attention(x, 4, 0.4), fullgraph=True,
                             backend='aot_eager')
    out = compiled(qkv)
    grad, = torch.autograd.grad(out.sin().sum(), qkv)
    ref = reference_attention(qkv, 4, 0.4)
    ref_grad, = torch.autograd.grad(ref.sin().sum(), qkv)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=2e-6 * ref.abs().max().item())
    torch.testing.assert_close(grad.double(), ref_grad.double(), rtol=0,
                               atol=2e-6 * ref_grad.abs().max().item())
