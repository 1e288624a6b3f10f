"""Every classification config builds, trains one step with its own pipeline and batch augments
on generated images, and predicts; the 384 px config starts from a 224 px checkpoint."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import tnt_backbone  # noqa: F401
from tnt_backbone.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = ['tnt-ti-p16_16xb64_in1k.py', 'tnt-s-p16_16xb64_in1k.py', 'tnt-b-p16_16xb64_in1k.py',
           'tnt-s-p16_in1k-384px.py', 'tnt-ti-p16_toy.py']


def config(name):
    return Config.fromfile(osp.join(ROOT, 'configs', 'classification', name))


@pytest.fixture(scope='module')
def toy_root(load_tool, tmp_path_factory):
    make = load_tool('data/make_toy_imagenet.py').make_toy_imagenet
    return make(str(tmp_path_factory.mktemp('toy') / 'data'), num_train=2, num_val=1, size=48)


@pytest.fixture(scope='module')
def s224_checkpoint(tmp_path_factory):
    """A TNT-S classifier at 224 px whose position grid is constant per channel."""
    init_default_scope('tnt_backbone')
    model = MODELS.build(config('tnt-s-p16_16xb64_in1k.py').model)
    model.init_weights()
    with torch.no_grad():
        model.backbone.sentence_pos[:, 1:] = torch.linspace(-1, 1, 384)
    path = str(tmp_path_factory.mktemp('ckpt') / 's224.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=300)), path)
    return path, model.state_dict()


class Snapshot(Hook):
    """Keeps the weights before the first step, and the loss and batch of the last."""

    def before_train(self, runner):
        self.before = {k: v.clone() for k, v in runner.model.state_dict().items()}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.loss = outputs['loss'].item()
        self.batch = data_batch


def shrink_crops(pipeline, size=32):
    """Small crops keep the real archs fast on CPU (TNT takes any input size)."""
    for t in pipeline:
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = size
        elif t['type'] == 'Resize':
            t['scale'] = (10000, size + size // 8)
        elif t['type'] == 'CenterCrop':
            t['crop_size'] = size


@pytest.mark.parametrize('name', CONFIGS)
def test_config_trains_one_step_and_predicts(name, toy_root, s224_checkpoint, tmp_path):
    cfg = config(name)
    assert cfg.default_scope == 'tnt_backbone'
    if 'Pretrained' in str(cfg.model):
        cfg.model.backbone.init_cfg.checkpoint = s224_checkpoint[0]
        cfg.model.head.init_cfg.checkpoint = s224_checkpoint[0]
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(batch_size=2, num_workers=0, persistent_workers=False)
        loader.dataset.update(data_root=toy_root, indices=2)
        shrink_crops(loader.dataset.pipeline)
    cfg.train_cfg.update(max_epochs=1, val_interval=2)  # predict once, in runner.test()
    cfg.default_hooks.checkpoint = None
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    step = Snapshot()
    runner.register_hook(step)
    runner.train()
    after = runner.model.state_dict()
    changed = [k for k in step.before if not torch.equal(step.before[k], after[k])]
    assert 'head.fc.weight' in changed
    assert 'backbone.blocks.0.sentence_layer.attn.qkv.weight' in changed
    assert math.isfinite(step.loss) and step.loss > 0
    # the config's Mixup/CutMix give soft targets
    mixed = runner.model.data_preprocessor(step.batch, training=True)['data_samples'][0]
    if cfg.model.train_cfg.augments:
        assert mixed.gt_score.shape == (cfg.model.head.num_classes, )
    else:
        assert 'gt_score' not in mixed
    metrics = runner.test()
    assert 0 <= metrics['accuracy/top1'] <= 100


def test_384_config_starts_from_224_checkpoint(s224_checkpoint):
    path, sd224 = s224_checkpoint
    cfg = config('tnt-s-p16_in1k-384px.py')
    cfg.model.backbone.init_cfg.checkpoint = path
    cfg.model.head.init_cfg.checkpoint = path
    init_default_scope('tnt_backbone')
    model = MODELS.build(cfg.model)
    model.init_weights()
    sd = model.state_dict()
    assert sd['backbone.sentence_pos'].shape == (1, 1 + 24 * 24, 384)
    # a grid constant per channel stays that constant whatever the interpolation
    assert torch.allclose(sd['backbone.sentence_pos'][0, 1:],
                          sd224['backbone.sentence_pos'][0, 1:2]
                          .expand(576, -1), atol=1e-5)
    assert torch.equal(sd['backbone.sentence_pos'][:, 0], sd224['backbone.sentence_pos'][:, 0])
    for k in ('head.fc.weight', 'head.fc.bias',
              'backbone.blocks.11.sentence_layer.mlp.fc2.weight', 'backbone.word_pos',
              'backbone.norm.weight'):
        assert torch.equal(sd[k], sd224[k]), k
