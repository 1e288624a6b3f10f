"""tools/analysis/gpu_check.py: the GPU check runs end to end on a CPU with small sizes, so that
it is known to work before a GPU sees it; a failing section is recorded, not fatal."""
import json
import math

import pytest
import torch

ON_CPU = ['parity', 'word_attention', 'triton_resources', 'mask_rcnn', 'toy_det_fp32',
          'toy_seg_amp_bfloat16', 'throughput']


@pytest.fixture(scope='module')
def gpu_check(load_tool):
    return load_tool('analysis/gpu_check.py')


@pytest.mark.slow
def test_runs_end_to_end_on_a_cpu(gpu_check, tmp_path):
    report = gpu_check.main(['--device', 'cpu', '--small', '--out-dir', str(tmp_path)])
    sections = report['sections']
    errors = {name: sec['error'] for name, sec in sections.items() if sec['status'] != 'ok'}
    assert not errors
    assert list(sections) == ON_CPU  # the GPU-only fp16/bf16 detector runs are left out
    with open(tmp_path / 'gpu_check.json') as f:
        assert json.load(f) == json.loads(json.dumps(report))
    markdown = (tmp_path / 'gpu_check.md').read_text()
    assert all(f'| {name} | ok |' in markdown for name in ON_CPU)

    # fp32 on the CPU against float64: a real difference, far below the bound
    parity = sections['parity']
    for name, value in parity['figures'].items():
        assert 0 < value < 1e-5, name
    assert [t['met'] for t in parity['targets']] == [True] * 4

    words = sections['word_attention']['figures']
    assert words['sentences'] == 8 * 10  # 128x160: 8x10 sentences, batch 1
    assert words['float32_kernel_vs_sdpa_max_error'] < 1e-5
    assert words['bfloat16_kernel_vs_sdpa_max_error'] < 2e-2
    assert all(v > 0 for k, v in words.items() if k.endswith(('_ms', '_speedup')))

    kernels = sections['triton_resources']['figures']
    assert kernels['compute_capability'] == 90  # an H100/H200, where a CPU compiles for
    for name in ('float32_forward_default', 'bfloat16_backward_default'):
        assert 0 < kernels[name]['registers'] <= 255 and kernels[name]['stack_bytes'] == 0
        assert 4 <= kernels[name]['warps_per_sm_by_registers'] <= 64
    assert sections['triton_resources']['targets'][0]['met'] is True  # judged on a CPU too

    det = sections['mask_rcnn']['figures']
    assert det['tnt_s_step_s'] > 0 and det['swin_t_step_s'] > 0 and det['pyramid_tnt_s_step_s'] > 0
    assert det['pyramid_tnt_s_vs_swin_t_step'] == det['pyramid_tnt_s_step_s'] / det['swin_t_step_s']
    assert 'tnt_s_peak_mib' not in det  # a CPU's peak memory needs a process per figure
    # GPU targets are reported, not judged, on a CPU
    assert [t['met'] for t in sections['mask_rcnn']['targets']] == [None]
    assert sections['word_attention']['targets'][0]['met'] is None

    toy_det = sections['toy_det_fp32']['figures']
    assert toy_det['iterations'] == 1 and all(map(math.isfinite, toy_det['losses']))
    assert toy_det['optim_wrapper'] == 'OptimWrapper' and toy_det['loss_scale'] is None
    assert toy_det['predicted_masks'] == len(toy_det['predicted_boxes']) > 0
    for x1, y1, x2, y2 in toy_det['predicted_boxes']:  # in the 128 px image
        assert 0 <= x1 <= x2 <= 128 and 0 <= y1 <= y2 <= 128

    toy_seg = sections['toy_seg_amp_bfloat16']['figures']
    assert toy_seg['iterations'] == 1 and all(map(math.isfinite, toy_seg['losses']))
    assert toy_seg['optim_wrapper'] == 'tnt_backbone.AmpOptimWrapper'
    assert toy_seg['dtype'] == 'bfloat16' and toy_seg['loss_scale'] is None
    assert toy_seg['label_map_shape'] == toy_seg['image_shape']
    assert set(toy_seg['labels_predicted']) <= set(range(toy_seg['classes']))

    speed = sections['throughput']['figures']
    assert speed['timm'] == 'timm has no TNT-Ti, 2 blocks: ours alone'
    rows = ['infer_eager', 'infer_amp', 'infer_compiled', 'train_eager', 'train_amp']
    assert all(speed[f'ours_{row}_img_s'] > 0 for row in rows)
    assert speed['ours_compile_s'] > 0


def test_a_failing_section_is_recorded_and_the_others_still_run(gpu_check, tmp_path,
                                                                monkeypatch):
    def broken(sec):
        sec.figures['measured'] = 1.5
        raise RuntimeError('kernel launch failed')

    def fine(sec):
        sec.figures['speed'] = 2.
        sec.target('speed', 2., 1., at_most=False)  # a GPU target: not judged on a CPU

    monkeypatch.setattr(gpu_check, 'SECTIONS', {'broken': (broken, ('cpu', )),
                                                'gpu_only': (fine, ('cuda', )),
                                                'fine': (fine, ('cpu', ))})
    report = gpu_check.main(['--device', 'cpu', '--out-dir', str(tmp_path)])
    broken_run, fine_run = report['sections']['broken'], report['sections']['fine']
    assert list(report['sections']) == ['broken', 'fine']
    assert broken_run['status'] == 'failed' and 'kernel launch failed' in broken_run['error']
    assert broken_run['figures'] == {'measured': 1.5}  # what it had measured is kept
    assert fine_run['status'] == 'ok' and fine_run['targets'][0]['met'] is None
    with open(tmp_path / 'gpu_check.json') as f:
        assert json.load(f)['sections']['broken']['status'] == 'failed'
    markdown = (tmp_path / 'gpu_check.md').read_text()
    assert '## broken: failed' in markdown and 'kernel launch failed' in markdown
    assert '| fine: speed | 2 | >= 1 | n/a (GPU target) |' in markdown


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_asking_for_cuda_without_a_gpu_is_an_error(gpu_check, tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(['--device', 'cuda', '--out-dir', str(tmp_path)])
    assert 'no CUDA device; use --device cpu --small' in capsys.readouterr().err
