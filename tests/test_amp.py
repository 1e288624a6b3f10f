"""Mixed precision: ``tools/train.py --amp`` (``tnt_backbone.AmpOptimWrapper``) on a CPU, and
fp16 loss scaling through the memory-saving MLP backward and the whole backbone.

The GPU side of ``--amp`` is mmengine's own wrapper; ``tools/analysis/gpu_check.py`` trains with
it on a GPU (fp16 and bf16).
"""
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper

from conftest import REPO_ROOT
from tnt_backbone.models import TNT
from tnt_backbone.models.layers import Mlp

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')
on_cpu_only = pytest.mark.skipif(torch.cuda.is_available(),
                                 reason='on a GPU the wrapper is mmengine\'s own')


def amp_wrapper(model, lr=0.1, **kwargs):
    return build_optim_wrapper(model, dict(type='tnt_backbone.AmpOptimWrapper',
                                           optimizer=dict(type='SGD', lr=lr), **kwargs))


def flat_grad(params):
    return torch.cat([p.grad.flatten() for p in params]).double()


def test_train_amp_switches_to_our_wrapper(load_tool):
    train_tool = load_tool('train.py')
    args = train_tool.parse_args([TOY_CONFIG, '--amp', '--cfg-options',
                                  'optim_wrapper.dtype=bfloat16'])
    cfg = train_tool.load_config(args)
    train_tool.apply_train_args(cfg, args)
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'tnt_backbone.AmpOptimWrapper'
    assert wrapper.loss_scale == 'dynamic' and wrapper.dtype == 'bfloat16'
    # the config's own settings stay
    assert wrapper.optimizer.lr == 8e-4 and wrapper.clip_grad == dict(max_norm=1.0)


@on_cpu_only
def test_cpu_amp_step_autocasts_to_bf16_and_does_not_scale_the_loss():
    """An SGD update is -lr x the gradient: that of the bf16 forward, unscaled."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
    x = torch.randn(8, 16)
    F.mse_loss(model(x), torch.ones(8, 4)).backward()
    fp32_grad = flat_grad(model.parameters())
    model.zero_grad()
    before = torch.cat([p.detach().flatten() for p in model.parameters()]).double()

    wrapper = amp_wrapper(model)
    assert wrapper.cast_dtype == torch.bfloat16 and not wrapper.loss_scaler.is_enabled()
    with wrapper.optim_context(model):
        out = model(x)
    assert out.dtype == torch.bfloat16
    wrapper.update_params(F.mse_loss(out.float(), torch.ones(8, 4)))
    after = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    update = (before - after) / 0.1
    assert torch.cosine_similarity(update, fp32_grad, 0) > 0.999
    assert update.norm() / fp32_grad.norm() == pytest.approx(1, abs=0.02)


@on_cpu_only
def test_cpu_amp_resumes_a_gpu_fp16_checkpoint():
    """A GPU fp16 run's optimizer state holds its loss scaler's; a CPU resume ignores it."""
    model = nn.Linear(4, 4)
    wrapper = amp_wrapper(model)
    state = wrapper.state_dict()
    state['loss_scaler'] = dict(scale=1024., growth_factor=2., backoff_factor=.5,
                                growth_interval=2000, _growth_tracker=7)
    wrapper.load_state_dict(state)
    assert 'loss_scaler' in wrapper.state_dict() and not wrapper.loss_scaler.is_enabled()


@on_cpu_only
@pytest.mark.parametrize('dtype', ['float16', 'float32'])
def test_cpu_amp_refuses_other_dtypes_than_bf16(dtype):
    with pytest.raises(ValueError, match=f"bfloat16 only, got dtype '{dtype}'"):
        amp_wrapper(nn.Linear(4, 4), dtype=dtype)


def fp16_autocast_loss(module, x, weights, factor=1.):
    """``factor * sum(module(x) * weights)``, the forward under CPU fp16 autocast."""
    module.zero_grad()
    with torch.autocast('cpu', dtype=torch.float16):
        outs = module(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    return factor * sum((o.float() * w).sum() for o, w in zip(outs, weights))


def test_fp16_loss_scaling_through_the_memory_saving_mlp():
    """Small fp16 gradients underflow to zero in the MLP's backward unless the loss is scaled;
    scaled, then unscaled, they match float64's."""
    torch.manual_seed(0)
    mlp = Mlp(24, 96).train()
    x = torch.randn(4, 16, 24)
    weights = [torch.randn(4, 16, 24)]
    factor = 2. ** -28  # the output gradients (~factor) are far below fp16's smallest, 2^-24
    w1, b1, w2, b2 = [p.detach().double().requires_grad_() for p in mlp.parameters()]
    out = F.linear(F.gelu(F.linear(x.double(), w1, b1)), w2, b2)
    reference = torch.cat([g.flatten() for g in torch.autograd.grad(
        factor * (out * weights[0].double()).sum(), [w1, b1, w2, b2])])

    fp16_autocast_loss(mlp, x, weights, factor).backward()
    assert all(p.grad.dtype == torch.float32 for p in mlp.parameters())
    assert (flat_grad(mlp.parameters()) == 0).all()  # lost
    scaler = torch.amp.GradScaler('cpu', init_scale=2. ** 16)
    scaler.scale(fp16_autocast_loss(mlp, x, weights, factor)).backward()
    scaler.unscale_(torch.optim.SGD(mlp.parameters(), lr=0.))
    scaled = flat_grad(mlp.parameters())
    assert torch.cosine_similarity(scaled, reference, 0) > 0.999
    assert scaled.norm() / reference.norm() == pytest.approx(1, abs=0.01)


def test_backbone_trains_under_fp16_autocast_with_dynamic_loss_scaling():
    """The whole TNT-Ti (fused word attention in fp16, the MLP backward, SDPA) through a
    dynamic GradScaler, as mmengine's AmpOptimWrapper runs it on a GPU: at a scale of 2^10
    some gradients overflow fp16, the scaler sees it, skips the step and backs off; then every
    gradient is finite and close in direction to fp32's."""
    torch.manual_seed(0)
    model = TNT(arch='tiny', out_indices=(5, 11), word_map_index=2).train()
    x = torch.randn(2, 3, 48, 64)
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in model(x)]
    model.zero_grad()
    sum((o * w).sum() for o, w in zip(model(x), weights)).backward()
    reference = flat_grad(model.parameters())
    before = [p.detach().clone() for p in model.parameters()]

    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler('cpu', init_scale=2. ** 10)
    skipped = 0
    for _ in range(20):
        scaler.scale(fp16_autocast_loss(model, x, weights)).backward()
        scaler.unscale_(optimizer)
        mixed = flat_grad(model.parameters())
        scale = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        if scaler.get_scale() == scale:  # a step was taken
            break
        skipped += 1
        assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert skipped > 0 and scaler.get_scale() < 2. ** 10
    assert torch.isfinite(mixed).all()
    assert torch.cosine_similarity(mixed, reference, 0) > 0.99
    assert not all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
