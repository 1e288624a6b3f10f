"""ImageNet-layout dataset, toy data generator, classification transforms and sampler."""
import filecmp
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

import tnt_backbone  # noqa: F401  (registers the transforms)
from tnt_backbone.datasets import (ImageNet, PackClsInputs, RandAugment, RandomErasing,
                                   RandomResizedCrop, RepeatAugSampler)
from tnt_backbone.datasets import repeat_aug_sampler


@pytest.fixture(autouse=True)
def scope():
    init_default_scope('tnt_backbone')  # as the Runner does for our configs


@pytest.fixture(scope='module')
def toy(load_tool):
    return load_tool('data/make_toy_imagenet.py')


@pytest.fixture(scope='module')
def toy_root(toy, tmp_path_factory):
    return toy.make_toy_imagenet(str(tmp_path_factory.mktemp('toy') / 'data'), num_train=4,
                                 num_val=2, size=48)


def copy_of(toy_root, tmp_path):
    return shutil.copytree(toy_root, tmp_path / 'copy')


# ----------------------------------------------------------------------------- toy generator
def test_toy_layout_is_imagenet_style(toy, toy_root):
    with open(osp.join(toy_root, 'meta', 'train.txt')) as f:
        lines = [line.split() for line in f]
    assert len(lines) == 4 * len(toy.CLASSES)
    for path, label in lines:
        cls = path.split('/')[0]
        assert int(label) == toy.CLASSES.index(cls)
        assert osp.isfile(osp.join(toy_root, 'train', path)) and path.endswith('.JPEG')
    assert sorted(os.listdir(osp.join(toy_root, 'val'))) == sorted(toy.CLASSES)


def test_toy_is_deterministic_and_never_overwrites(toy, toy_root, tmp_path):
    again = toy.make_toy_imagenet(str(tmp_path / 'again'), num_train=4, num_val=2, size=48)
    for rel in ('meta/train.txt', 'train/circle/circle_0003.JPEG', 'val/stripes/stripes_0001.JPEG'):
        assert filecmp.cmp(osp.join(toy_root, rel), osp.join(again, rel), shallow=False)
    with pytest.raises(FileExistsError, match='not empty'):
        toy.make_toy_imagenet(again)


# ----------------------------------------------------------------------------------- dataset
def test_list_and_folder_modes_agree(toy, toy_root):
    listed = ImageNet(data_root=toy_root, ann_file='meta/val.txt', data_prefix='val')
    scanned = ImageNet(data_root=toy_root, data_prefix='val')
    assert listed.metainfo['classes'] == scanned.metainfo['classes'] == toy.CLASSES
    assert len(listed) == len(scanned) == 2 * len(toy.CLASSES)
    assert sorted(map(str, listed.load_data_list())) == \
        sorted(map(str, scanned.load_data_list()))


def test_missing_listed_image_names_file_and_line(toy_root, tmp_path):
    root = copy_of(toy_root, tmp_path)
    os.remove(root / 'val' / 'circle' / 'circle_0001.JPEG')  # line 4, after 2 checkerboards
    with pytest.raises(FileNotFoundError, match=r'val\.txt, line 4: .*circle_0001\.JPEG'):
        ImageNet(data_root=str(root), ann_file='meta/val.txt', data_prefix='val')


def test_bad_list_line_and_label_are_named(toy_root, tmp_path):
    root = copy_of(toy_root, tmp_path)
    (root / 'meta' / 'bad.txt').write_text('circle/circle_0000.JPEG 7\n')
    with pytest.raises(ValueError, match=r'bad\.txt, line 1: label 7 outside the 5 classes'):
        ImageNet(data_root=str(root), ann_file='meta/bad.txt', data_prefix='val')
    (root / 'meta' / 'bad.txt').write_text('circle/circle_0000.JPEG\n')
    with pytest.raises(ValueError, match=r'bad\.txt, line 1: expected "relative/path label"'):
        ImageNet(data_root=str(root), ann_file='meta/bad.txt', data_prefix='val')


@pytest.mark.parametrize('ann_file', ['', 'meta/val.txt'])
def test_empty_class_folder_is_named(toy_root, tmp_path, ann_file):
    root = copy_of(toy_root, tmp_path)
    os.makedirs(root / 'val' / 'zebra')
    with pytest.raises(ValueError, match=r'class folder .*zebra has no images'):
        ImageNet(data_root=str(root), ann_file=ann_file, data_prefix='val')


def test_corrupt_image_error_names_file(toy_root, tmp_path):
    root = copy_of(toy_root, tmp_path)
    (root / 'val' / 'square' / 'square_0000.JPEG').write_bytes(b'not a jpeg at all')
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackClsInputs')]
    dataset = ImageNet(data_root=str(root), data_prefix='val', pipeline=pipeline)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    index = paths.index(str(root / 'val' / 'square' / 'square_0000.JPEG'))
    with pytest.raises(Exception, match=r'square_0000\.JPEG'):
        dataset[index]


def test_pipeline_packs_image_and_label(toy_root):
    dataset = ImageNet(data_root=toy_root, ann_file='meta/val.txt', data_prefix='val',
                       pipeline=[dict(type='LoadImageFromFile'), dict(type='PackClsInputs')])
    item = dataset[3]
    assert item['inputs'].shape == (3, 48, 48) and item['inputs'].dtype == torch.uint8
    assert int(item['data_samples'].gt_label) == dataset.get_data_info(3)['gt_label']
    assert item['data_samples'].img_path == dataset.get_data_info(3)['img_path']


# -------------------------------------------------------------------------------- transforms
def test_random_resized_crop_respects_bounds():
    np.random.seed(0)
    t = RandomResizedCrop(scale=(40, 30), crop_ratio_range=(0.2, 0.6),
                          aspect_ratio_range=(0.5, 2.0))
    h, w = 300, 400
    for _ in range(500):
        top, left, ch, cw = t.crop_box(h, w)
        assert 0 <= top and top + ch <= h and 0 <= left and left + cw <= w
        # rounding each side by at most half a pixel bounds the error
        assert (ch - .5) * (cw - .5) / (h * w) <= 0.6 and (ch + .5) * (cw + .5) / (h * w) >= 0.2
        assert (cw - .5) / (ch + .5) <= 2.0 and (cw + .5) / (ch - .5) >= 0.5
    out = t(dict(img=np.zeros((h, w, 3), np.uint8)))
    assert out['img'].shape == (30, 40, 3) and out['img_shape'] == (30, 40)


def test_random_resized_crop_falls_back_to_clamped_center():
    t = RandomResizedCrop(scale=16, crop_ratio_range=(0.99, 1.0))
    # a 10 x 100 strip: no crop of ~99 % of the area has an aspect ratio within 3/4..4/3
    assert t.crop_box(10, 100) == (0, (100 - 13) // 2, 10, 13)
    with pytest.raises(ValueError, match='crop_ratio_range'):
        RandomResizedCrop(scale=16, crop_ratio_range=(0.5, 0.1))


def rand_img(seed=0, shape=(32, 40, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize('op', ['AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize',
                                'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness',
                                'Sharpness', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY'])
def test_rand_augment_every_op_keeps_shape_and_dtype(op):
    out = RandAugment(num_ops=1, op_prob=1., ops=[op])(dict(img=rand_img()))['img']
    assert out.shape == (32, 40, 3) and out.dtype == np.uint8


def test_rand_augment_magnitudes_mean_what_they_say():
    img = rand_img()
    full = dict(num_ops=1, op_prob=1., magnitude=10, magnitude_std=0)
    assert (RandAugment(ops=['Invert'], **full)(dict(img=img))['img'] == 255 - img).all()
    # solarize at full strength inverts every pixel (threshold 0)
    assert (RandAugment(ops=['Solarize'], **full)(dict(img=img))['img'] == 255 - img).all()
    # posterize at magnitude 5 keeps 4 - 2 = 2 bits: multiples of 64
    half = dict(full, magnitude=5)
    assert (RandAugment(ops=['Posterize'], **half)(dict(img=img))['img'] % 64 == 0).all()
    never = dict(full, op_prob=0.)
    assert (RandAugment(ops=['Rotate'], **never)(dict(img=img))['img'] == img).all()
    with pytest.raises(ValueError, match='unknown RandAugment ops'):
        RandAugment(ops=['Zoom'])


def test_random_erasing_area_and_probability():
    np.random.seed(1)
    img = np.zeros((60, 80, 3), np.uint8)
    assert (RandomErasing(prob=0.)(dict(img=img))['img'] == 0).all()
    for _ in range(20):
        out = RandomErasing(prob=1., mean=200, std=1)(dict(img=img.copy()))['img']
        rows, cols = np.nonzero(out.any(axis=2))
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert len(rows) == box  # one filled rectangle
        assert 0.02 - 0.01 <= box / (60 * 80) <= 1 / 3 + 0.01


def test_pack_handles_gray_images():
    out = PackClsInputs()(dict(img=np.zeros((5, 6), np.uint8), gt_label=2, img_path='x'))
    assert out['inputs'].shape == (1, 5, 6) and out['data_samples'].gt_label.item() == 2


def test_full_imagenet_train_pipeline_on_toy_images(toy_root):
    pipeline = Compose([
        dict(type='LoadImageFromFile'), dict(type='RandomResizedCrop', scale=32),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='RandAugment'), dict(type='RandomErasing', prob=0.25),
        dict(type='PackClsInputs')])
    item = pipeline(dict(img_path=osp.join(toy_root, 'train/circle/circle_0000.JPEG'),
                         gt_label=0))
    assert item['inputs'].shape == (3, 32, 32)


# ----------------------------------------------------------------------------------- sampler
def test_repeat_aug_sampler_single_process():
    s = RepeatAugSampler(list(range(10)), num_repeats=3, seed=0)
    first = list(s)
    assert len(first) == len(s) == 10
    # consecutive copies of the same images: a a a b b b c c c d
    assert first[:9:3] == first[1:9:3] == first[2:9:3]
    s.set_epoch(1)
    assert list(s) != first


def test_repeat_aug_sampler_puts_copies_on_different_ranks(monkeypatch):
    per_rank = []
    for rank in range(3):
        monkeypatch.setattr(repeat_aug_sampler, 'get_dist_info', lambda r=rank: (r, 3))
        per_rank.append(list(RepeatAugSampler(list(range(10)), num_repeats=3, seed=5)))
    assert all(len(r) == 4 for r in per_rank)  # ceil(10 / 3): the length of a plain epoch
    assert per_rank[0] == per_rank[1] == per_rank[2]  # each image once on every rank
    assert len(set(per_rank[0])) == 4
