"""The Triton word-attention kernel against float64 textbook attention, and when
:func:`tnt_backbone.ops.word_attention` picks it.

The kernel runs on CPU tensors in Triton's interpreter, which TRITON_INTERPRET=1 switches on
only when set before triton is imported (Triton's own reductions are @triton.jit functions
too). This process has imported triton already, so one child process runs every kernel call
(this file run as a script: ``python test_triton_word_attention.py CASES RESULTS``) and the
tests here check what it returns.
"""
import importlib
import itertools
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from tnt_backbone.ops import HAS_TRITON, select_path, word_attention

dispatch = importlib.import_module('tnt_backbone.ops.word_attention')
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason='triton is not installed')

# (sentences T, heads, head dim, dtype). Head dims 6/10 are TNT-Ti/S and TNT-B's, padded to
# 16 in 8-sentence blocks; 20 pads to 32 (4-sentence blocks), 64 runs 2-sentence blocks. T=1,
# fewer sentences than a block and counts that are no multiple of it.
CASES = [
    (1, 2, 6, torch.float32),
    (7, 4, 6, torch.float32),
    (33, 4, 10, torch.float32),
    (5, 3, 20, torch.float32),
    (13, 1, 64, torch.float32),
    (33, 4, 6, torch.bfloat16),
    (9, 1, 64, torch.bfloat16),
    (33, 4, 6, torch.float16),
    (9, 1, 64, torch.float16),
]
COMPILED = (2, 1)  # cases run through torch.compile as well, the second at another T
TILED = (2, 4)  # cases run with other launch settings: 2 and 1 sentences per program
STRIDED = 1  # its qkv is a slice of a wider tensor, as the kernel must not assume contiguity


def make_case(index):
    """qkv (T, 16, 3C) and the output's gradient (T, 16, C), both rounded to the case's dtype;
    the references are computed from the rounded values."""
    T, heads, head_dim, dtype = CASES[index]
    C = heads * head_dim
    generator = torch.Generator().manual_seed(index)
    # Scores of a few units: softmax rows far from uniform and far from one-hot.
    wide = (torch.randn(T, 16, 3 * C + 8, generator=generator, dtype=torch.float64) * 2).to(dtype)
    qkv = wide[..., 3:3 + 3 * C] if index == STRIDED else wide[..., :3 * C].contiguous()
    grad = torch.randn(T, 16, C, generator=generator, dtype=torch.float64)
    return dict(qkv=qkv, grad=grad.to(dtype), heads=heads, scale=head_dim**-0.5)


def reference(case):
    """Textbook softmax(q k^T * scale) v per head in float64, and its gradient for qkv."""
    qkv = case['qkv'].double().requires_grad_()
    T, n, _ = qkv.shape
    q, k, v = qkv.unflatten(-1, (3, case['heads'], -1)).permute(2, 0, 3, 1, 4).unbind(0)
    out = torch.softmax(q @ k.transpose(-2, -1) * case['scale'], dim=-1) @ v
    out = out.transpose(1, 2).reshape(T, n, -1)
    grad_qkv, = torch.autograd.grad(out, qkv, case['grad'].double())
    return out.detach(), grad_qkv


def run_cases(cases_path, results_path):
    """In the child process: every case through ``word_attention(impl='triton')`` and its
    backward, the COMPILED ones also through torch.compile(fullgraph=True), the TILED ones with
    smaller tiles, an empty batch, and torch.library.opcheck of the operator."""
    from tnt_backbone.ops.triton_word_attention import launch_config
    cases = torch.load(cases_path)

    def run(fn, case):
        qkv = case['qkv'].detach().requires_grad_()  # keeps the strides, unlike clone()
        out = fn(qkv, case['heads'], case['scale'])
        out.backward(case['grad'])
        return out.detach(), qkv.grad

    def triton_path(qkv, heads, scale):
        return word_attention(qkv, heads, scale, impl='triton')

    compiled = torch.compile(triton_path, fullgraph=True, backend='aot_eager')
    results = dict(
        eager=[run(triton_path, case) for case in cases],
        compiled=[run(compiled, cases[i]) for i in COMPILED],
        empty=run(triton_path, dict(qkv=torch.zeros(0, 16, 36), grad=torch.zeros(0, 16, 12),
                                    heads=2, scale=0.4)))
    with launch_config(tile_elements=512, num_warps=2):
        results['tiled'] = [run(triton_path, cases[i]) for i in TILED]
    try:
        torch.library.opcheck(torch.ops.tnt_backbone.word_attention_triton.default,
                              (cases[2]['qkv'].detach().requires_grad_(), 4, 0.3))
        results['opcheck'] = None
    except Exception as error:  # reported by the test, with its message
        results['opcheck'] = repr(error)
    torch.save(results, results_path)


@pytest.fixture(scope='module')
def interpreted(tmp_path_factory):
    """What the child process computed (see :func:`run_cases`)."""
    folder = tmp_path_factory.mktemp('triton_interpreter')
    cases, results = folder / 'cases.pt', folder / 'results.pt'
    torch.save([make_case(i) for i in range(len(CASES))], cases)
    env = dict(os.environ, TRITON_INTERPRET='1')
    child = subprocess.run([sys.executable, __file__, str(cases), str(results)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert child.returncode == 0, child.stdout + child.stderr
    return torch.load(results)


def cosine(a, b):
    return F.cosine_similarity(a.double().flatten(), b.double().flatten(), dim=0).item()


@needs_triton
@pytest.mark.parametrize('index', range(len(CASES)),
                         ids=[f'T{T}-h{h}-hd{hd}-{str(dt)[6:]}' for T, h, hd, dt in CASES])
def test_kernel_matches_float64_reference(interpreted, index):
    case = make_case(index)
    ref_out, ref_grad = reference(case)
    out, grad_qkv = interpreted['eager'][index]
    assert out.dtype == grad_qkv.dtype == case['qkv'].dtype
    assert out.shape == ref_out.shape and grad_qkv.shape == ref_grad.shape
    C = ref_out.shape[2]
    if out.dtype == torch.float32:
        torch.testing.assert_close(out.double(), ref_out, rtol=0,
                                   atol=1e-5 * ref_out.abs().max().item())
        for part in range(3):  # the gradients of q, k and v
            ref_part = ref_grad[..., part * C:(part + 1) * C]
            torch.testing.assert_close(grad_qkv[..., part * C:(part + 1) * C].double(), ref_part,
                                       rtol=0, atol=1e-5 * ref_part.abs().max().item())
    else:
        assert cosine(out, ref_out) >= 0.9999
        for part in range(3):
            assert cosine(grad_qkv[..., part * C:(part + 1) * C],
                          ref_grad[..., part * C:(part + 1) * C]) >= 0.9999, part


def assert_fp32_matches_reference(index, out, grad_qkv):
    """An fp32 case's output and qkv gradient within 1e-5 of the largest reference value."""
    ref_out, ref_grad = reference(make_case(index))
    torch.testing.assert_close(out.double(), ref_out, rtol=0,
                               atol=1e-5 * ref_out.abs().max().item())
    torch.testing.assert_close(grad_qkv.double(), ref_grad, rtol=0,
                               atol=1e-5 * ref_grad.abs().max().item())


@needs_triton
def test_compiled_kernel_matches_float64_reference(interpreted):
    """torch.compile(fullgraph=True) traces the operator (fake impl, autograd), also with the
    number of sentences symbolic after a second size."""
    for index, results in zip(COMPILED, interpreted['compiled']):
        assert_fp32_matches_reference(index, *results)


@needs_triton
def test_other_launch_settings_give_the_same_results(interpreted):
    """launch_config (what the GPU check's sweep uses) changes the tiling, not the function:
    2 sentences per program where 8 are the default, and 1 at head dim 64."""
    for index, results in zip(TILED, interpreted['tiled']):
        assert_fp32_matches_reference(index, *results)


@needs_triton
def test_launch_config_takes_powers_of_two_and_restores_the_defaults():
    from tnt_backbone.ops import triton_word_attention as module
    before = dict(module._LAUNCH)
    with pytest.raises(ValueError, match='tile_elements must be a power of two, got 1000'):
        with module.launch_config(tile_elements=1000):
            pass
    with module.launch_config(num_warps=8):
        assert module._LAUNCH == dict(before, num_warps=8)
    assert module._LAUNCH == before


# Largest shared memory of one program (bytes) by compute capability: A100, H100/H200.
SHARED_MEMORY_PER_BLOCK = {80: 163 * 1024, 90: 227 * 1024}


@needs_triton
@pytest.mark.skipif(os.environ.get('TRITON_INTERPRET') == '1', reason='interpreted here')
def test_kernels_compile_for_nvidia_gpus_without_spilling():
    """What the interpreter cannot tell: Triton lowers both kernels to A100 and H100/H200
    binaries (ptxas accepts them), for every storage dtype and the word heads of TNT-S (4 x 6),
    TNT-B (4 x 10) and PyramidTNT-S (2 x 4), with no register spilled and their shared memory
    within the GPU's, at the default launch settings."""
    from tnt_backbone.ops.triton_word_attention import compiled_resources
    layouts = [(capability, dtype, (4, 6)) for capability in SHARED_MEMORY_PER_BLOCK
               for dtype in (torch.float32, torch.bfloat16, torch.float16)]
    layouts += [(90, torch.float32, (4, 10)), (90, torch.float32, (2, 4))]
    for (capability, dtype, (heads, head_dim)), backward in itertools.product(layouts,
                                                                              (False, True)):
        used = compiled_resources(backward, dtype, heads, head_dim, capability)
        where = f'{"backward" if backward else "forward"} {dtype} {heads}x{head_dim} ' \
                f'sm_{capability}: {used}'
        assert used['stack_bytes'] == 0 and 0 < used['registers'] <= 255, where
        assert 0 < used['shared_bytes'] <= SHARED_MEMORY_PER_BLOCK[capability], where
        assert (used['num_warps'], used['sentences']) == (4, 8), where  # 2048 / (16 x 16)


@needs_triton
@pytest.mark.skipif(os.environ.get('TRITON_INTERPRET') == '1', reason='interpreted here')
def test_compiled_resources_follow_the_launch_settings():
    """Four times the sentences per program hold more values per thread."""
    from tnt_backbone.ops.triton_word_attention import compiled_resources, launch_config
    used = {}
    for tile in (512, 2048):
        with launch_config(tile_elements=tile, num_warps=2):
            used[tile] = compiled_resources(True, torch.float32, 4, 6)
    assert (used[512]['sentences'], used[2048]['sentences']) == (2, 8)
    assert used[512]['num_warps'] == used[2048]['num_warps'] == 2
    assert used[512]['registers'] < used[2048]['registers']
    with pytest.raises(ValueError, match='torch.float64 storage'):
        compiled_resources(False, torch.float64, 4, 6)


@needs_triton
def test_no_sentences(interpreted):
    out, grad_qkv = interpreted['empty']
    assert out.shape == (0, 16, 12) and grad_qkv.shape == (0, 16, 36)


@needs_triton
def test_operator_registration(interpreted):
    """Schema, fake implementation, autograd registration and AOT dispatch with dynamic shapes
    agree (torch.library.opcheck's full set)."""
    assert interpreted['opcheck'] is None, interpreted['opcheck']


@needs_triton
def test_bad_input_is_rejected_with_a_clear_error():
    op = torch.ops.tnt_backbone.word_attention_triton
    with pytest.raises(ValueError, match='sentences of 9 words, not 16'):
        op(torch.zeros(2, 9, 36), 3, 0.5)
    with pytest.raises(ValueError, match=r'width 35 is not 3 \* heads \* head_dim'):
        op(torch.zeros(2, 16, 35), 3, 0.5)
    with pytest.raises(ValueError, match='head dim 65 over 64'):
        op(torch.zeros(2, 16, 195), 1, 0.5)
    with pytest.raises(ValueError, match='torch.float64 storage'):
        op(torch.zeros(2, 16, 36, dtype=torch.float64), 3, 0.5)
    with pytest.raises(ValueError, match=r'grad of shape \(2, 16, 11\), not \(2, 16, 12\)'):
        torch.ops.tnt_backbone.word_attention_triton_backward(torch.zeros(2, 16, 11),
                                                              torch.zeros(2, 16, 36), 3, 0.5)


@needs_triton
@pytest.mark.skipif(os.environ.get('TRITON_INTERPRET') == '1', reason='interpreted here')
def test_cpu_tensors_outside_the_interpreter_are_an_error():
    with pytest.raises(ValueError, match='runs on CUDA tensors, got cpu.*TRITON_INTERPRET=1'):
        word_attention(torch.zeros(2, 16, 36), 3, 0.5, impl='triton')


def fake_cuda(*shape, dtype=torch.float32):
    """A CUDA tensor of shape and dtype only: the path decision needs no GPU."""
    return torch.empty(*shape, dtype=dtype, device='cuda')


@needs_triton
def test_cuda_tensors_take_the_triton_kernel_where_it_applies():
    with FakeTensorMode():
        assert select_path(fake_cuda(8, 16, 72), 4) == ('triton', None)
        assert select_path(fake_cuda(8, 16, 72, dtype=torch.bfloat16), 4) == ('triton', None)
        assert select_path(fake_cuda(8, 16, 3 * 64), 1) == ('triton', None)
        # The Triton operator's fake implementation gives the output (autograd on a CUDA
        # tensor would need the CUDA runtime).
        assert word_attention(fake_cuda(8, 16, 72), 4, 0.4).shape == (8, 16, 24)


def test_cuda_tensors_fall_back_to_sdpa_where_the_kernel_does_not_apply(monkeypatch):
    monkeypatch.setattr(dispatch, 'HAS_TRITON', True)  # the decision only: nothing runs
    with FakeTensorMode():
        assert select_path(fake_cuda(8, 16, 72), 4, dropout_p=0.1) == ('sdpa',
                                                                        'attention dropout')
        assert select_path(fake_cuda(8, 9, 72), 4) == ('sdpa', 'sentences of 9 words, not 16')
        assert select_path(fake_cuda(8, 16, 3 * 65), 1) == ('sdpa', 'head dim 65 over 64')
        path, why = select_path(fake_cuda(8, 16, 72, dtype=torch.float64), 4)
        assert path == 'sdpa' and why.startswith('torch.float64')
        monkeypatch.setattr(dispatch, 'HAS_TRITON', False)
        assert select_path(fake_cuda(8, 16, 72), 4) == ('sdpa', 'triton is not installed')
        with pytest.raises(ValueError, match="impl='kernel'.*triton is not installed"):
            word_attention(fake_cuda(8, 16, 72), 4, 0.4, impl='kernel')


def test_package_imports_without_triton(repo_root):
    """A machine without triton (no CUDA build of torch) imports the package and runs the
    other paths; only the Triton path is then an error."""
    code = ('import sys; sys.modules["triton"] = None\n'  # `import triton` now fails
            'import torch\n'
            'from tnt_backbone.ops import HAS_TRITON, word_attention\n'
            'assert not HAS_TRITON\n'
            'word_attention(torch.randn(2, 16, 36), 3, 0.5)\n'
            'try:\n'
            '    word_attention(torch.randn(2, 16, 36), 3, 0.5, impl="triton")\n'
            'except ValueError as error:\n'
            '    print(error)\n')
    child = subprocess.run([sys.executable, '-c', code], cwd=repo_root, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    assert "impl='triton'): triton is not installed" in child.stdout


if __name__ == '__main__':
    run_cases(*sys.argv[1:])
