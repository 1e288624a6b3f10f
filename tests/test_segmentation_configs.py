"""Every segmentation config builds, trains one step and predicts; label edge cases.

Parametrised over ``configs/segmentation/*.py``: a new config is tested by being added. The real
architectures are kept (no pretrained weights: ``init_cfg`` removed; SyncBN reverted to BN as
mmengine's Runner does outside distributed training); the inputs are tiny.
"""
import copy
import functools
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config, ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, TRANSFORMS, init_default_scope
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from tnt_backbone.models import TNT

from conftest import REPO_ROOT

# TNT configs only; the PyramidTNT ones are tested in test_pyramid_tnt_configs.py
CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'segmentation', '*_tnt-*.py')))
TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'segmentation',
                      'upernet_tnt-ti-p16_toy-ade20k-128x128.py')
TRAIN_SIZE = (32, 48)  # train images are padded to this, as to the crop size in real runs
TRAIN_HW = (27, 43)
ODD_HW = (35, 45)  # not a multiple of 16 nor of the 32x32 sliding-window crop


@functools.lru_cache(maxsize=None)
def _parse(path):
    return Config.fromfile(path)


def load(path):
    cfg = copy.deepcopy(_parse(path))
    init_default_scope(cfg.default_scope)
    return cfg


def build_model(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.data_preprocessor.size = TRAIN_SIZE
    return revert_sync_batchnorm(MODELS.build(model_cfg))


def make_batch(hw, num_classes, n=2, seed=0):
    """``n`` random uint8 images of size ``hw`` with random labels in [0, num_classes)."""
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, *hw), dtype=torch.uint8, generator=g))
        sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *hw), generator=g))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def num_classes(cfg):
    return cfg.model.decode_head.num_classes


def test_configs_found():
    names = {osp.basename(p) for p in CONFIGS}
    assert {'upernet_tnt-s-p16_8xb2-160k_ade20k-512x512.py',
            'upernet_tnt-ti-p16_8xb2-160k_ade20k-512x512.py',
            'upernet_tnt-b-p16_8xb2-160k_ade20k-512x512.py',
            'fpn_tnt-s-p16_8xb2-80k_ade20k-512x512.py',
            'trans2seg_tnt-s-p16_8xb2-40k_ade20k-512x512.py',
            osp.basename(TOY_CONFIG)} <= names


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_train_step_and_predict(path):
    cfg = load(path)
    assert cfg.model.backbone.type == 'tnt_backbone.TNT'
    assert cfg.model.data_preprocessor.mean == cfg.model.data_preprocessor.std == [127.5] * 3
    assert cfg.optim_wrapper.constructor == 'tnt_backbone.LayerDecayOptimWrapperConstructor'
    if path != TOY_CONFIG:
        assert num_classes(cfg) == 150
        assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
        assert cfg.model.backbone.img_size == 512  # the 14x14 grid is resized to 32x32 at load
        assert cfg.model.backbone.init_cfg.checkpoint.startswith('checkpoints/tnt-')
        assert cfg.model.test_cfg.mode == 'slide'
        iters = cfg.train_cfg.max_iters
        assert cfg.param_scheduler[-1].end == iters
        assert f'-{iters // 1000}k_' in osp.basename(path)

    model = build_model(cfg)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    # layer-wise decay: embeddings (layer 0) get base_lr * rate ** (depth + 1)
    base_lr, rate = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.paramwise_cfg.layer_decay_rate
    lrs = [g['lr'] for g in optim_wrapper.optimizer.param_groups]
    assert max(lrs) == pytest.approx(base_lr)
    assert min(lrs) == pytest.approx(base_lr * rate ** (model.backbone.depth + 1))

    head_param = model.decode_head.conv_seg.weight
    before = head_param.detach().clone()
    model.train()
    batch = model.data_preprocessor(make_batch(TRAIN_HW, num_classes(cfg)), True)
    loss, log_vars = model.parse_losses(model(**batch, mode='loss'))
    assert 'decode.loss_ce' in log_vars
    assert all(torch.isfinite(v).all() for v in log_vars.values())
    loss.backward()
    # distributed training (find_unused_parameters=False) stops at iteration 2 otherwise
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f'parameters without gradient: {unused}'
    assert 'find_unused_parameters' not in cfg
    optim_wrapper.step()
    assert not torch.equal(head_param, before)

    model.eval()
    test_cfgs = [model.test_cfg, ConfigDict(mode='whole'),
                 ConfigDict(mode='slide', crop_size=(32, 32), stride=(21, 21))]
    for test_cfg in test_cfgs:
        model.test_cfg = test_cfg
        with torch.no_grad():
            out = model.test_step(make_batch(ODD_HW, num_classes(cfg), n=1))
        assert out[0].pred_sem_seg.shape == ODD_HW, test_cfg
        assert out[0].seg_logits.data.shape == (num_classes(cfg), *ODD_HW), test_cfg


def test_pretrained_224_grid_is_resized_to_32x32_at_load(tmp_path):
    """The ADE20K configs load an ImageNet (224 px: 14x14 grid) checkpoint through init_cfg."""
    src = TNT(arch='tiny', img_size=224, out_type='cls_token', out_indices=(-1, ))
    src.init_weights()
    ckpt = tmp_path / 'tnt-ti-p16_in1k.pth'
    torch.save(dict(state_dict={f'backbone.{k}': v for k, v in src.state_dict().items()}), ckpt)
    cfg = load(osp.join(REPO_ROOT, 'configs', 'segmentation',
                        'upernet_tnt-ti-p16_8xb2-160k_ade20k-512x512.py'))
    cfg.model.backbone.init_cfg.checkpoint = str(ckpt)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.backbone.sentence_pos.shape == (1, 1 + 32 * 32, 192)
    assert torch.equal(model.backbone.blocks[7].sentence_layer.mlp.fc2.weight,
                       src.blocks[7].sentence_layer.mlp.fc2.weight)


def _label_batch(cfg, label):
    """Two random images (BatchNorm needs > 1) whose ground truth is ``label`` (H, W) int64."""
    batch = make_batch(tuple(label.shape), num_classes(cfg))
    for sample in batch['data_samples']:
        sample.gt_sem_seg = PixelData(data=label[None])
    return batch


def test_ignore_index_pixels_add_nothing_but_count_in_the_mean():
    """mmseg's CrossEntropyLoss (avg_non_ignore=False): pixels labelled 255 contribute zero
    loss, and the mean is still taken over all pixels."""
    cfg = load(TOY_CONFIG)
    head = build_model(cfg).decode_head
    K, (h, w) = num_classes(cfg), (8, 10)
    logits = torch.randn(1, K, h, w)
    label = torch.randint(0, K, (1, h, w))
    label[:, :3] = 255
    sample = SegDataSample(gt_sem_seg=PixelData(data=label))
    loss = head.loss_by_feat(logits, [sample])['loss_ce']
    valid = label[0] != 255
    expected = F.cross_entropy(logits[0].permute(1, 2, 0)[valid], label[0][valid],
                               reduction='sum') / (h * w)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    changed = logits.clone()
    changed[..., :3, :] = torch.randn(1, K, 3, w)  # logits at ignored pixels do not matter
    assert head.loss_by_feat(changed, [sample])['loss_ce'].item() == pytest.approx(loss.item())


def test_label_png_outside_the_class_range_is_an_error_not_ignored(tmp_path):
    """As in mmseg: reduce_zero_label maps 0 to 255 and v to v - 1; a value above the class
    range survives loading and makes the loss raise (on CPU, "Target ... is out of bounds")."""
    cfg = load(TOY_CONFIG)
    K = num_classes(cfg)
    png = np.ones((16, 20), np.uint8)  # class 0 after reduce_zero_label
    png[:4] = 0  # "other": ignored
    png[-4:] = K + 5  # outside 1..K
    cv2.imwrite(str(tmp_path / 'label.png'), png)
    load_ann = TRANSFORMS.build(dict(type='LoadAnnotations', reduce_zero_label=True))
    label = load_ann(dict(seg_map_path=str(tmp_path / 'label.png'), reduce_zero_label=True,
                          seg_fields=[]))['gt_seg_map']
    assert set(np.unique(label)) == {0, 255, K + 4}

    model = build_model(cfg)
    model.train()
    batch = model.data_preprocessor(_label_batch(cfg, torch.from_numpy(label).long()), True)
    with pytest.raises(IndexError, match=f'Target {K + 4} is out of bounds'):
        model.loss(batch['inputs'], batch['data_samples'])
    in_range = torch.from_numpy(np.where(label == K + 4, 255, label)).long()
    batch = model.data_preprocessor(_label_batch(cfg, in_range), True)
    assert torch.isfinite(model.loss(batch['inputs'], batch['data_samples'])['decode.loss_ce'])
