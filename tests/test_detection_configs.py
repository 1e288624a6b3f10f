"""Every detection config builds, trains one step and predicts; dataset error handling.

Parametrised over ``configs/detection/*.py``: a new config is tested by being added. The real
architectures are kept (no pretrained weights: ``init_cfg`` removed); the inputs are tiny.
"""
import copy
import glob
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DATASETS, MODELS, init_default_scope

import tnt_backbone  # noqa: F401

from conftest import REPO_ROOT

# TNT configs only; the PyramidTNT ones are tested in test_pyramid_tnt_configs.py
CONFIGS = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'detection', '*_tnt-*.py')))
TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')


def load(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    return cfg


def pipelines(cfg):
    """(name, pipeline list) of every dataloader in the config, through dataset wrappers."""
    for split in ('train', 'val', 'test'):
        dataset = cfg[f'{split}_dataloader'].dataset
        while 'pipeline' not in dataset:
            dataset = dataset.dataset
        yield split, dataset.pipeline


def build_model(cfg):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    if model_cfg.get('num_queries', 0) > 100:
        # DINO takes its queries from the top-k encoder tokens; a tiny image has < 900
        model_cfg.num_queries = 100
    train_cfg = model_cfg.get('train_cfg', {})
    if 'rcnn' in train_cfg:
        # RoI heads sample 512 RoIs per image (the mask head runs on up to 128): 32 keeps
        # every code path at a fraction of the time
        for stage in train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]:
            stage.sampler.num = 32
        train_cfg.rpn_proposal.max_per_img = 100
    model = MODELS.build(model_cfg)
    # as the Runner does: without it, DINO's heads start with logits in the hundreds and, for
    # some seeds, pick invalid (infinite) encoder proposals whose matching cost is NaN
    model.init_weights()
    return model


def num_classes(cfg):
    head = cfg.model.roi_head.bbox_head if 'roi_head' in cfg.model else cfg.model.bbox_head
    return (head[-1] if isinstance(head, list) else head).num_classes


def test_configs_found():
    assert len(CONFIGS) >= 10, CONFIGS


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_train_step_and_predict(path):
    cfg = load(path)
    backbone = cfg.model.backbone
    assert backbone.type == 'tnt_backbone.TNT'
    if path != TOY_CONFIG:
        assert backbone.init_cfg.type == 'Pretrained'
        assert backbone.init_cfg.checkpoint.startswith('checkpoints/tnt-')
        assert backbone.drop_path_rate == 0.1
        assert cfg.optim_wrapper.constructor == 'tnt_backbone.LayerDecayOptimWrapperConstructor'
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert 'SyncBN' not in cfg.pretty_text
    for split, pipeline in pipelines(cfg):
        assert len(Compose(pipeline).transforms) == len(pipeline), split

    torch.manual_seed(0)
    model = build_model(cfg)
    assert 'find_unused_parameters' not in cfg  # every parameter trains (see below)
    with_mask = 'mask_head' in cfg.model.get('roi_head', {})
    # two sizes that are not multiples of 16 or 32: padding and batching are exercised
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 72, 96), (3, 64, 60)],
                          num_items=[2, 3], num_classes=num_classes(cfg), with_mask=with_mask)

    model.train()
    loss, log_vars = model.parse_losses(model(**model.data_preprocessor(data, True),
                                              mode='loss'))
    assert torch.isfinite(loss), log_vars
    loss.backward()
    last = f'blocks.{len(model.backbone.blocks) - 1}.'
    for name in ('word_embed', 'blocks.0.', last):  # gradients reach every depth
        grads = [p.grad for n, p in model.backbone.named_parameters() if n.startswith(name)]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    # distributed training (find_unused_parameters=False) stops at iteration 2 otherwise
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f'parameters without gradient: {unused}'
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    optim_wrapper.step()

    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    assert len(results) == 2
    for result, sample in zip(results, data['data_samples']):
        pred = result.pred_instances
        assert pred.bboxes.shape[1:] == (4, ) and len(pred.scores) == len(pred.labels)
        if len(pred.bboxes):  # boxes are mapped back to the original image
            h, w = sample.ori_shape
            assert pred.bboxes[:, 2].max() <= w + 1 and pred.bboxes[:, 3].max() <= h + 1
        if with_mask:
            assert pred.masks.shape[1:] == sample.ori_shape


# ------------------------------------------------------------------ data errors, as mmdet does
@pytest.fixture
def toy_copy(toy_coco, tmp_path):
    """A private copy of a tiny toy dataset (6 train, 2 val images of 64 px) to corrupt."""
    dst = tmp_path / 'toy'
    shutil.copytree(toy_coco(6, 2, 64), dst)
    return str(dst)


def toy_dataset_cfg(data_root, split='train', **kwargs):
    cfg = load(TOY_CONFIG)
    dataset = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
    dataset.update(data_root=data_root, **kwargs)
    return dataset


def test_corrupt_annotation_json_raises(toy_copy):
    ann = osp.join(toy_copy, 'annotations', 'instances_train.json')
    with open(ann) as f:
        text = f.read()
    with open(ann, 'w') as f:
        f.write(text[:len(text) // 2])  # truncated mid-way
    with pytest.raises(json.JSONDecodeError):
        DATASETS.build(toy_dataset_cfg(toy_copy))


def test_missing_image_raises_with_its_path(toy_copy):
    dataset = DATASETS.build(toy_dataset_cfg(toy_copy))
    missing = dataset.get_data_info(1)['img_path']
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=osp.basename(missing)):
        dataset[1]


def add_image_without_boxes(data_root):
    ann = osp.join(data_root, 'annotations', 'instances_train.json')
    with open(ann) as f:
        coco = json.load(f)
    first = coco['images'][0]
    coco['images'].append(dict(first, id=1000, file_name=first['file_name']))
    with open(ann, 'w') as f:
        json.dump(coco, f)
    return len(coco['images'])


def test_image_without_boxes_skipped_in_training_kept_in_testing(toy_copy):
    num_images = add_image_without_boxes(toy_copy)
    train_set = DATASETS.build(toy_dataset_cfg(toy_copy))  # filter_empty_gt=True
    assert len(train_set) == num_images - 1
    assert 1000 not in [train_set.get_data_info(i)['img_id'] for i in range(len(train_set))]
    test_set = DATASETS.build(toy_dataset_cfg(toy_copy, test_mode=True))
    assert len(test_set) == num_images
    empty = test_set[num_images - 1]['data_samples']
    assert empty.img_id == 1000 and len(empty.gt_instances) == 0


def test_image_without_boxes_trains_when_kept(toy_copy):
    """With filter_empty_gt=False an empty image is a valid (background-only) sample."""
    num_images = add_image_without_boxes(toy_copy)
    dataset = DATASETS.build(toy_dataset_cfg(
        toy_copy, filter_cfg=dict(filter_empty_gt=False, min_size=32)))
    assert len(dataset) == num_images
    batch = pseudo_collate([dataset[num_images - 1], dataset[0]])
    assert len(batch['data_samples'][0].gt_instances) == 0
    cfg = load(TOY_CONFIG)
    cfg.model.backbone.arch = dict(word_dim=12, sentence_dim=48, depth=4, word_heads=1,
                                   sentence_heads=2, mlp_ratio=2.)
    cfg.model.backbone.update(out_indices=(1, 2, 3), word_map_index=0)
    cfg.model.neck[0].update(in_channels=48, out_channels=[48] * 4)
    cfg.model.neck[1].in_channels = [48] * 4
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    log_vars = model.train_step(batch, build_optim_wrapper(model, cfg.optim_wrapper))
    assert torch.isfinite(log_vars['loss'])


# ------------------------------------------------------------------------- toy data generator
def test_toy_coco_is_deterministic_and_its_masks_match_the_pixels(load_tool, tmp_path):
    import mmcv
    import numpy as np
    from pycocotools.coco import COCO
    gen = load_tool('data/make_toy_coco.py')
    files = [gen.make_toy_coco(str(tmp_path / name), num_train=4, num_val=2, size=64, seed=seed)
             for name, seed in (('a', 1), ('b', 1), ('c', 2))]
    read = lambda path: open(path, 'rb').read()  # noqa: E731
    assert read(files[0]['train']) == read(files[1]['train'])
    assert read(files[0]['train']) != read(files[2]['train'])
    image = osp.join('images', 'val', '000001.png')
    assert read(tmp_path / 'a' / image) == read(tmp_path / 'b' / image)

    coco = COCO(files[0]['train'])
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(gen.CLASSES)
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) >= 4
    for ann in coco.loadAnns(coco.getAnnIds()):
        info = coco.loadImgs(ann['image_id'])[0]
        img = mmcv.imread(tmp_path / 'a' / 'images' / 'train' / info['file_name'],
                          channel_order='rgb')
        mask = coco.annToMask(ann).astype(bool)
        assert abs(mask.sum() - ann['area']) < 0.1 * ann['area']
        ys, xs = np.nonzero(mask)
        x, y, w, h = ann['bbox']
        assert x - 1 <= xs.min() and xs.max() <= x + w + 1
        assert y - 1 <= ys.min() and ys.max() <= y + h + 1
        colour = img[mask].mean(axis=0)  # the shape's pixels carry its class colour
        expected = np.array(gen.CLASS_COLOURS[ann['category_id'] - 1])
        assert np.abs(colour - expected).max() < 40, (colour, expected)
