"""End to end on the generated toy ImageNet: training learns, resume continues where it
stopped, and the runner's checkpoint initialises a TNT backbone and the toy detector with the
trained weights."""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import tnt_backbone  # noqa: F401
from tnt_backbone.engine import safe_torch_load
from tnt_backbone.registry import MODELS

pytestmark = pytest.mark.slow
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
EPOCHS = 6  # the toy config's 10, shortened for CI time (about 70 % top-1 instead of 80 %)


class Record(Hook):
    """Keeps the training losses, and the epoch, iteration and optimizer state at start."""

    def __init__(self):
        self.losses = []

    def before_train(self, runner):
        self.start = (runner.epoch, runner.iter)
        self.optimizer = copy.deepcopy(runner.optim_wrapper.optimizer.state_dict())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append(outputs['loss'].item())


def toy_config(data_root, work_dir):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'classification', 'tnt-ti-p16_toy.py'))
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data_root
    cfg.train_cfg.update(max_epochs=EPOCHS, val_interval=EPOCHS)
    cfg.param_scheduler[1].end = EPOCHS
    cfg.work_dir = work_dir
    return cfg


@pytest.fixture(scope='module')
def trained(load_tool, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('toy')
    make = load_tool('data/make_toy_imagenet.py').make_toy_imagenet
    data_root = make(str(tmp / 'data'), num_val=20)
    cfg = toy_config(data_root, str(tmp / 'run'))
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    return dict(data_root=data_root, work_dir=cfg.work_dir, losses=record.losses,
                iters_per_epoch=len(runner.train_dataloader),
                metrics=runner.val_loop.run(), tmp=tmp)


def test_toy_training_learns(trained):
    per_epoch = np.array(trained['losses']).reshape(EPOCHS, -1).mean(1)
    assert per_epoch[-1] < 0.75 * per_epoch[0], per_epoch
    assert trained['metrics']['accuracy/top1'] >= 55, trained['metrics']  # chance: 20 %


def test_resume_continues_epoch_and_optimizer_state(trained):
    last = osp.join(trained['work_dir'], f'epoch_{EPOCHS - 1}.pth')
    cfg = toy_config(trained['data_root'], str(trained['tmp'] / 'resumed'))
    cfg.update(resume=True, load_from=last)
    runner = Runner.from_cfg(cfg)
    record = Record()
    runner.register_hook(record)
    runner.train()
    assert record.start == (EPOCHS - 1, (EPOCHS - 1) * trained['iters_per_epoch'])
    assert len(record.losses) == trained['iters_per_epoch']  # only the last epoch ran
    saved = safe_torch_load(last)['optimizer']
    assert [g['lr'] for g in record.optimizer['param_groups']] == \
        [g['lr'] for g in saved['param_groups']]
    assert saved['state'].keys() == record.optimizer['state'].keys()
    for i, state in saved['state'].items():
        for k in ('step', 'exp_avg', 'exp_avg_sq'):
            assert torch.equal(torch.as_tensor(state[k]),
                               torch.as_tensor(record.optimizer['state'][i][k]))


def backbone_weights(checkpoint):
    return {k[len('backbone.'):]: v for k, v in safe_torch_load(checkpoint)['state_dict'].items()
            if k.startswith('backbone.')}


def test_checkpoint_initialises_a_tnt_classifier_backbone(trained):
    ckpt = osp.join(trained['work_dir'], f'epoch_{EPOCHS}.pth')
    init_default_scope('tnt_backbone')
    backbone = MODELS.build(dict(type='TNT', arch='tiny', img_size=64, out_type='cls_token',
                                 init_cfg=dict(type='Pretrained', checkpoint=ckpt)))
    backbone.init_weights()
    saved, own = backbone_weights(ckpt), backbone.state_dict()
    assert len(saved) > 300 and saved.keys() == own.keys()
    for k, v in saved.items():
        assert torch.equal(own[k], v), k


def test_checkpoint_initialises_the_toy_detector(trained):
    """The classifier's checkpoint as ``init_cfg`` of the toy Mask R-CNN's backbone (224-px
    position grid, sentence maps and the stride-4 word map)."""
    ckpt = osp.join(trained['work_dir'], f'epoch_{EPOCHS}.pth')
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py'))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=ckpt)
    init_default_scope(cfg.default_scope)
    detector = MODELS.build(cfg.model)
    detector.init_weights()
    saved, own = backbone_weights(ckpt), detector.backbone.state_dict()
    shared = set(saved) & set(own)
    assert len(shared) > 300
    for k in shared - {'sentence_pos'}:
        assert torch.equal(own[k], saved[k]), k
    # the 64-px classifier's 4x4 sentence grid, resized bicubically to the detector's 14x14
    cls_pos, grid = saved['sentence_pos'][:, :1], saved['sentence_pos'][:, 1:]
    grid = F.interpolate(grid.reshape(1, 4, 4, -1).permute(0, 3, 1, 2), size=(14, 14),
                         mode='bicubic', align_corners=False)
    torch.testing.assert_close(own['sentence_pos'],
                               torch.cat([cls_pos, grid.flatten(2).transpose(1, 2)], dim=1))
    # only the output norms are new, only the classifier's final norm is left out
    assert all(k.startswith(('out_norms.', 'word_norm.')) for k in set(own) - shared)
    assert set(saved) - shared == {'norm.weight', 'norm.bias'}
