"""tools/analysis: FLOPs of a backbone and of whole configs, and the benchmark's report."""
import os.path as osp
import re
from argparse import Namespace

import pytest
import torch

from conftest import REPO_ROOT
from tnt_backbone.apis import TrainStepSplit, config_train_step, profile_ops

TOY_CONFIGS = [osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py'),
               osp.join(REPO_ROOT, 'configs', 'segmentation',
                        'upernet_tnt-ti-p16_toy-ade20k-128x128.py')]


@pytest.fixture(scope='module')
def get_flops(load_tool):
    return load_tool('analysis/get_flops.py')


def small_backbone_flops(get_flops, out_type):
    model = get_flops.backbone_model(Namespace(arch='small', layout='v2', out_type=out_type))
    return get_flops.count(model, (torch.randn(1, 3, 224, 224), ))


@pytest.fixture(scope='module')
def full_small_flops(get_flops):
    """MACs of the whole TNT-S at 224 (every block on every sentence)."""
    return small_backbone_flops(get_flops, 'featmap')[0]


def test_backbone_flops_match_the_paper(full_small_flops):
    assert full_small_flops / 1e9 == pytest.approx(5.2, abs=0.1)  # paper, Table 1: 5.2 G


def test_class_token_output_skips_the_last_blocks_other_sentences(get_flops, full_small_flops):
    """Only the class token's query, projection and MLP run in the last sentence layer."""
    full = full_small_flops
    flops, params = small_backbone_flops(get_flops, 'cls_token')
    assert params == 23_383_584  # timm's tnt_s_patch16_224 without its head
    D, N = 384, 196  # sentence dim, sentences besides the class token
    skipped = N * (D * D + D * D + 2 * D * 4 * D)  # their q, proj, fc1 and fc2
    skipped += 2 * N * (N + 1) * D  # their attention rows: q @ k^T and attn @ v
    # what remains apart is LayerNorm: four output norms vs one final norm on one token
    assert full - flops == pytest.approx(skipped, rel=0.01)


@pytest.mark.parametrize('config', TOY_CONFIGS, ids=osp.basename)
def test_a_whole_config_is_counted(get_flops, config):
    """Detectors and segmentors need data samples to run their ``_forward``: the tool makes
    them. The count covers the backbone and more; the params are all of the model's."""
    model = get_flops.config_model(config)
    image = torch.randn(1, 3, 96, 128)
    flops, params = get_flops.count(model, (image, ))
    backbone_flops, _ = get_flops.count(model.model.backbone, (image, ))
    assert params == sum(p.numel() for p in model.parameters())
    assert flops > backbone_flops > 0


def test_benchmark_reports_speed_and_peak_memory(load_tool, capsys):
    load_tool('analysis/benchmark.py').main(
        ['--arch', 'tiny', '--size', '224', '--batch', '2', '--mode', 'train', '--iters', '1',
         '--warmup', '0', '--memory'])
    found = re.search(r'ours:\s+([\d.]+) img/s  peak \+\s+([\d.]+) MiB', capsys.readouterr().out)
    assert found, 'no report line'
    speed, peak = map(float, found.groups())
    # a TNT-Ti training step at 224 x 2 keeps far more than 10 MiB of activations
    assert speed > 0 and peak > 10


@pytest.mark.parametrize('config', TOY_CONFIGS, ids=osp.basename)
def test_train_iter_cost_of_a_whole_config(load_tool, capsys, config):
    load_tool('analysis/train_iter_cost.py').main(
        [config, '--shape', '96', '128', '--batch', '2', '--iters', '1'])
    found = re.search(r'([\d.]+) s per training iteration, peak memory \+([\d.]+) GiB',
                      capsys.readouterr().out)
    assert found, 'no report line'
    seconds, _ = map(float, found.groups())
    assert seconds > 0


def test_config_train_step_does_the_same_work_for_the_same_seed():
    """Weights, batch and the RoI heads' sampling follow the seed: two builds with one seed
    compute the same loss, another seed another one."""
    losses = [config_train_step(TOY_CONFIGS[0], 1, (64, 96), seed=s)().item() for s in (0, 0, 1)]
    assert losses[0] == losses[1] != losses[2]


def test_train_step_split_attributes_activations_to_their_part():
    """Checkpointing every backbone block removes most of the backbone's kept activations and
    none of the heads'; each part's time is measured."""
    def split_of(with_cp):
        split = TrainStepSplit()
        step = config_train_step(TOY_CONFIGS[0], 1, (64, 96),
                                 {'model.backbone.with_cp': with_cp}, split=split)
        step()
        return split.summary()
    plain, cp = split_of(False), split_of(True)
    for part in ('data_preprocessor', 'backbone', 'neck', 'heads'):
        assert plain[f'forward {part}'] > 0
    for part in ('heads', 'neck', 'backbone'):
        assert plain[f'backward {part}'] > 0
    assert plain['optimizer step'] > 0
    assert cp['activations backbone MiB'] < 0.3 * plain['activations backbone MiB']
    assert cp['activations heads MiB'] == pytest.approx(plain['activations heads MiB'], rel=0.05)


def test_train_iter_cost_split_report(load_tool, capsys):
    load_tool('analysis/train_iter_cost.py').main(
        [TOY_CONFIGS[0], '--shape', '64', '96', '--batch', '1', '--iters', '2', '--split',
         '--profile'])
    out = capsys.readouterr().out
    for row in ('forward backbone', 'backward heads', 'optimizer step',
                'activations backbone MiB', 'convolutions \\(profiled\\)',
                'matrix multiplies GFLOP/s'):
        assert re.search(rf'{row} +[\d.]+', out), row
    # the toy Mask R-CNN's FPN and heads are convolutions, its backbone linear layers
    assert all(float(re.search(rf'{kind} \(profiled\) +([\d.]+)', out).group(1)) > 0
               for kind in ('convolutions', 'matrix multiplies', 'rest'))


def test_profile_ops_counts_matrix_multiply_flops():
    """Forward: one GEMM per linear layer; backward: each weight's gradient, and the input
    gradient of every layer but the first (its input needs none), all 2*M*K*N FLOPs."""
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(),
                                torch.nn.Linear(64, 16))
    x = torch.randn(4, 50, 32)  # 3-d, as the backbones' tokens
    first, second = 2 * 200 * 32 * 64, 2 * 200 * 64 * 16

    def infer():
        with torch.no_grad():
            model(x)

    def train():
        model(x).sum().backward()

    def batched():
        torch.bmm(x, torch.randn(4, 32, 8))

    for step, flops in ((infer, first + second), (train, 2 * first + 3 * second),
                        (batched, 2 * 4 * 50 * 32 * 8)):
        split, counted = profile_ops(step, 2)
        assert counted == flops
        assert split['matrix multiplies'] > 0 and split['rest'] >= 0
        assert split['convolutions'] == split['fused attention'] == 0


def test_benchmark_profile_report(load_tool, capsys):
    load_tool('analysis/benchmark.py').main(
        ['--arch', 'tiny', '--batch', '1', '--mode', 'train', '--iters', '1', '--warmup', '0',
         '--profile', '1'])
    out = capsys.readouterr().out
    found = re.search(r'ours: ([\d.]+): matrix multiplies ([\d.]+) .*fused attention ([\d.]+) '
                      r'.* at (\d+) GFLOP/s', out)
    assert found, out
    total, matmul, attention, gflops = map(float, found.groups())
    # TNT-Ti's step: its linear layers most of it; SDPA on the sentences
    assert 0 < matmul + attention < total and attention > 0 and gflops > 0
    assert re.search(r'matrix-multiply peak here .* (\d+) GFLOP/s', out)
