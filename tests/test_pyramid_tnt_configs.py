"""Every PyramidTNT config builds, trains one step with a gradient on every trainable
parameter, and predicts; the recipes say what the official code and the issue say."""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config, ConfigDict
from mmengine.dataset import Compose
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, MODELS, init_default_scope
from mmengine.structures import BaseDataElement, PixelData
from mmseg.structures import SegDataSample

import tnt_backbone  # noqa: F401
from tnt_backbone.models import PyramidTNT

from conftest import REPO_ROOT

# config -> arch, crop, head width, the official classifier's parameter count
CLS = {'pyramid-tnt-ti_8xb128_in1k-192px.py': ('tiny', 192, 320, 10_578_529),
       'pyramid-tnt-s_8xb128_in1k-256px.py': ('small', 256, 512, 31_953_200),
       'pyramid-tnt-m_8xb128_in1k-256px.py': ('medium', 256, 768, 84_943_572),
       'pyramid-tnt-b_8xb128_in1k-256px.py': ('base', 256, 1024, 156_990_072)}
DET = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'detection', '*pyramid-tnt*.py')))
SEG = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'segmentation', '*pyramid-tnt*.py')))


def load(*parts):
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs', *parts))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def build(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    if 'rcnn' in model_cfg.get('train_cfg', {}):  # fewer sampled RoIs: same code paths
        model_cfg.train_cfg.rcnn.sampler.num = 32
        model_cfg.train_cfg.rpn_proposal.max_per_img = 100
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def step_reaches_every_parameter(model, cfg, losses):
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad
    build_optim_wrapper(model, cfg.optim_wrapper).step()


def test_configs_found():
    assert [osp.basename(p) for p in DET] == ['mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py',
                                              'retinanet_pyramid-tnt-s_fpn_1x_coco.py']
    assert [osp.basename(p) for p in SEG] == ['upernet_pyramid-tnt-s_8xb2-160k_ade20k-512x512.py',
                                              'upernet_pyramid-tnt-ti_toy-ade20k-128x128.py']


@pytest.mark.parametrize('name', CLS)
def test_classification_config(name):
    cfg = load('classification', name)
    arch, crop, width, num_params = CLS[name]
    # the official recipe
    assert cfg.train_cfg.max_epochs == 300 and cfg.param_scheduler[0].end == 20
    assert cfg.param_scheduler[1].begin == 20 and cfg.param_scheduler[1].end == 300
    assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    assert cfg.model.data_preprocessor.mean == cfg.model.data_preprocessor.std == [127.5] * 3
    assert cfg.train_dataloader.dataset.pipeline[1].scale == crop
    assert cfg.test_dataloader.dataset.pipeline[2].crop_size == crop
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        Compose(loader.dataset.pipeline)
    ema_cfg, = cfg.custom_hooks
    HOOKS.build(ema_cfg)
    # mmengine's momentum weighs the new value: one update moves 1 - 0.99996 of the way
    source = torch.nn.Linear(1, 1, bias=False)
    ema = ExponentialMovingAverage(source, momentum=ema_cfg.momentum)
    with torch.no_grad():
        source.weight.fill_(0.)
        ema.update_parameters(source)  # the first update copies
        source.weight.fill_(1.)
        ema.update_parameters(source)
    assert ema.module.weight.item() == pytest.approx(1 - 0.99996)

    model = build(cfg)
    assert model.backbone.arch_settings['depths'] == PyramidTNT.arch_zoo[arch]['depths']
    assert model.backbone.pos_grid == (crop // 8, crop // 8)
    assert model.head.fc.in_features == width
    assert sum(p.numel() for p in model.parameters()) == num_params
    model.train()
    batch = dict(inputs=[torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)] * 2,
                 data_samples=[BaseDataElement(gt_label=torch.tensor(i)) for i in (0, 3)])
    data = model.data_preprocessor(batch, True)
    step_reaches_every_parameter(model, cfg, model(**data, mode='loss'))
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch, False), mode='predict')
    assert preds[0].pred_score.shape == (1000, )


@pytest.mark.parametrize('path', DET, ids=osp.basename)
def test_detection_config(path):
    cfg = load(path)
    backbone = cfg.model.backbone
    assert backbone.type == 'tnt_backbone.PyramidTNT' and backbone.norm_eval
    assert backbone.init_cfg.checkpoint == 'checkpoints/pyramid-tnt-s_in1k.pth'
    assert not cfg.get('find_unused_parameters')
    torch.manual_seed(0)
    model = build(cfg)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160), (3, 120, 150)],
                          num_items=[2, 3], num_classes=80, with_mask=with_mask)
    model.train()
    feats = model.extract_feat(model.data_preprocessor(data, True)['inputs'])
    strides = [4, 8, 16, 32, 64] if with_mask else [8, 16, 32, 64, 128]
    assert [f.shape[-1] for f in feats] == [160 // s + (160 % s > 0) for s in strides]
    step_reaches_every_parameter(model, cfg, model(**model.data_preprocessor(data, True),
                                                   mode='loss'))
    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    assert len(results) == 2 and results[0].pred_instances.bboxes.shape[1:] == (4, )


@pytest.mark.parametrize('path', SEG, ids=osp.basename)
def test_segmentation_config(path):
    cfg = load(path)
    toy = 'toy' in path
    assert cfg.model.backbone.img_size == (128 if toy else 512)
    assert cfg.model.backbone.norm_eval != toy  # the toy demo trains the stem from scratch
    cfg.model.data_preprocessor.size = (96, 128)  # instead of padding to the crop size
    model = build(cfg)
    assert model.backbone.pos_grid == ((16, 16) if toy else (64, 64))
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(96, 128), ori_shape=(96, 128)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, cfg.model.decode_head.num_classes,
                                                    (1, 96, 128), generator=g))
        samples.append(s)
    batch = dict(inputs=[torch.randint(0, 256, (3, 96, 128), generator=g, dtype=torch.uint8)
                         for _ in range(2)], data_samples=samples)
    model.train()
    data = model.data_preprocessor(batch, True)
    step_reaches_every_parameter(model, cfg, model(**data, mode='loss'))
    model.eval()
    model.test_cfg = ConfigDict(mode='whole')
    with torch.no_grad():
        out = model.test_step(dict(inputs=batch['inputs'][:1], data_samples=samples[:1]))
    assert out[0].pred_sem_seg.shape == (96, 128)


def test_dense_config_loads_a_classifier_checkpoint(tmp_path):
    """The ImageNet classifier's backbone (256 grid) initialises the 512-grid UperNet."""
    init_default_scope('tnt_backbone')
    src = MODELS.build(load('classification', 'pyramid-tnt-s_8xb128_in1k-256px.py').model)
    src.init_weights()
    path = str(tmp_path / 'pyramid-tnt-s_in1k.pt')
    torch.save(dict(state_dict=src.state_dict()), path)
    cfg = load(SEG[0])
    assert 'toy' not in SEG[0]
    cfg.model.backbone.init_cfg.checkpoint = path
    model = MODELS.build(cfg.model)
    model.init_weights()
    bb = model.backbone
    assert bb.sentence_pos.shape == (1, 64 * 64, 128)
    assert bb.stages[1].attn_bias.shape == (1, 8, 32 * 32, 16 * 16)
    assert bb.stages[3].attn_bias.shape == (1, 16, 8 * 8, 8 * 8)  # from 4x4
    assert torch.equal(bb.stages[3].blocks[1].sentence_mlp.fc2.weight,
                       src.backbone.stages[3].blocks[1].sentence_mlp.fc2.weight)
    assert torch.equal(bb.norm3.weight, src.backbone.norm3.weight)
