"""The toy ADE20K-format dataset, and a short training run of the toy config on it."""
import filecmp
import glob
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DATASETS, init_default_scope

import tnt_backbone  # noqa: F401

from conftest import REPO_ROOT

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'segmentation',
                      'upernet_tnt-ti-p16_toy-ade20k-128x128.py')


@pytest.fixture(scope='module')
def toy_tool(load_tool):
    return load_tool('data/make_toy_ade20k.py')


@pytest.fixture(scope='module')
def toy_ade20k(toy_tool, tmp_path_factory):
    """``toy_ade20k(num_train, num_val, size)`` -> folder of a generated set (read-only)."""
    made = {}

    def get(num_train, num_val, size):
        key = (num_train, num_val, size)
        if key not in made:
            out = str(tmp_path_factory.mktemp('toy_ade20k'))
            toy_tool.make_toy_ade20k(out, num_train, num_val, size)
            made[key] = out
        return made[key]

    return get


def toy_cfg(data_root, size):
    """The toy config on ``data_root``, with crops of ``size``."""
    cfg = Config.fromfile(TOY_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = data_root
    cfg.train_dataloader.dataset.pipeline[2].scale = (size, size)
    cfg.train_dataloader.dataset.pipeline[3].crop_size = (size, size)
    cfg.model.data_preprocessor.size = (size, size)
    return cfg


def test_layout_labels_and_determinism(toy_tool, toy_ade20k, tmp_path):
    root = toy_ade20k(6, 3, 64)
    for split, num in (('training', 6), ('validation', 3)):
        imgs = sorted(glob.glob(osp.join(root, 'images', split, '*.jpg')))
        anns = sorted(glob.glob(osp.join(root, 'annotations', split, '*.png')))
        assert len(imgs) == len(anns) == num
        for img_path, ann_path in zip(imgs, anns):
            assert osp.basename(img_path)[:-4] == osp.basename(ann_path)[:-4]
            img = cv2.imread(img_path)
            ann = cv2.imread(ann_path, cv2.IMREAD_UNCHANGED)
            assert ann.dtype == np.uint8 and ann.ndim == 2 and ann.shape == img.shape[:2]
            assert 56 <= min(ann.shape) and max(ann.shape) <= 72
            assert set(np.unique(ann)) <= set(range(len(toy_tool.CLASSES) + 1))
    toy_tool.make_toy_ade20k(str(tmp_path), 6, 3, 64)
    for sub in ('images/training', 'annotations/validation'):
        cmp = filecmp.dircmp(osp.join(root, sub), str(tmp_path / sub))
        assert not cmp.diff_files and not cmp.left_only and not cmp.right_only


def test_every_class_and_other_appear(toy_tool, toy_ade20k):
    root = toy_ade20k(24, 6, 64)
    anns = glob.glob(osp.join(root, 'annotations', 'training', '*.png'))
    values = set().union(*(np.unique(cv2.imread(a, cv2.IMREAD_UNCHANGED)) for a in anns))
    assert values == set(range(len(toy_tool.CLASSES) + 1))


def test_bad_arguments_raise(toy_tool, tmp_path):
    with pytest.raises(ValueError, match='size'):
        toy_tool.make_toy_ade20k(str(tmp_path), 2, 1, size=16)


def test_config_dataset_reads_it_with_reduce_zero_label(toy_tool, toy_ade20k):
    root = toy_ade20k(6, 3, 64)
    cfg = toy_cfg(root, 64)
    init_default_scope(cfg.default_scope)
    assert tuple(cfg.train_dataloader.dataset.metainfo.classes) == toy_tool.CLASSES
    assert [tuple(c) for c in cfg.train_dataloader.dataset.metainfo.palette] == \
        list(toy_tool.PALETTE)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(val) == 3 and val.metainfo['classes'] == toy_tool.CLASSES
    sample = val[0]['data_samples']
    png = cv2.imread(sample.seg_map_path, cv2.IMREAD_UNCHANGED)
    loaded = sample.gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(loaded, np.where(png == 0, 255, png.astype(int) - 1))
    train = DATASETS.build(cfg.train_dataloader.dataset)
    # random rescale then a 64-px crop: never larger than the crop (padding comes later)
    shape = tuple(train[0]['inputs'].shape)
    assert shape[0] == 3 and max(shape[1:]) <= 64


@pytest.mark.slow
def test_short_training_learns_the_toy_classes(toy_ade20k, load_tool, tmp_path):
    """A ~2-minute run: mIoU well above both chance (25 for 4 classes) and the all-"ground"
    prediction (about 19), and a falling loss."""
    root = toy_ade20k(48, 12, 64)
    iters = 200
    overrides = [
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'param_scheduler.1.end={iters}', f'default_hooks.checkpoint.interval={iters}',
        'default_hooks.logger.interval=10', 'default_hooks.visualization.draw=False',
        'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
    ]
    for split in ('train', 'val', 'test'):
        overrides.append(f'{split}_dataloader.dataset.data_root={root}')
    overrides += ['train_dataloader.dataset.pipeline.2.scale=(64,64)',
                  'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
                  'model.data_preprocessor.size=(64,64)']
    train_tool = load_tool('train.py')
    runner = train_tool.main([TOY_CONFIG, '--work-dir', str(tmp_path / 'work'),
                              '--cfg-options', *overrides])
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == iters
    assert losses[-20:].mean() < 0.6 * losses[:10].mean()
    miou = runner.message_hub.get_scalar('val/mIoU').current()
    assert miou > 50
