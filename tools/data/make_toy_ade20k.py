"""Generates a small semantic-segmentation dataset in the ADE20K layout.

Each scene is a smooth, tinted ``ground`` texture with up to three objects on it: a red-ish
``disc``, a blue-ish rotated ``box`` and a ``stripes`` patch (two random colours, random angle,
so texture rather than colour names it). Small triangles of random colour are clutter labelled
0. Image sizes vary around ``--size`` and are mostly not multiples of 16. The output is
deterministic for a given seed.

Labels follow ADE20K: 0 is "other" (ignored; mmseg's ``reduce_zero_label=True`` turns it into
255), and the classes are 1..K in the PNG, 0..K-1 after loading. Layout under ``--out``::

    images/training/toy_train_000001.jpg       annotations/training/toy_train_000001.png
    images/validation/toy_val_000001.jpg       annotations/validation/toy_val_000001.png

Read it with mmseg's ``BaseSegDataset`` and ``metainfo=dict(classes=CLASSES, palette=PALETTE)``
(see ``configs/segmentation/upernet_tnt-ti-p16_toy-ade20k-128x128.py``).

Usage::

    python tools/data/make_toy_ade20k.py --out data/toy_ade20k --train 96 --val 24 --size 128
"""
import argparse
import math
import os
import os.path as osp

import cv2
import numpy as np

CLASSES = ('ground', 'disc', 'box', 'stripes')
PALETTE = ((140, 110, 80), (220, 40, 40), (40, 80, 230), (240, 220, 40))  # RGB, for drawing
OTHER = 0  # ADE20K's "other": ignored by training and evaluation
SPLITS = (('training', 'train'), ('validation', 'val'))


def ground_texture(rng, h, w):
    """(h, w, 3) float32 RGB: low-frequency tinted blobs, brownish-grey on average."""
    tint = np.array([130., 110., 90.]) + rng.uniform(-25, 25, 3)
    coarse = tint + rng.normal(0, 18, size=(5, 5, 3))
    return cv2.resize(coarse.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def stripes_texture(rng, h, w):
    """(h, w, 3) float32 RGB: stripes of two random colours at a random angle and period."""
    colours = rng.uniform(30, 230, size=(2, 3))
    angle, period = rng.uniform(0, math.pi), rng.uniform(5, 9)
    yy, xx = np.mgrid[:h, :w]
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    return colours[(np.floor(phase) % 2).astype(int)].astype(np.float32)


def rotated_rect(cx, cy, half_w, half_h, angle):
    """(4, 2) int32 corners of a rectangle rotated by ``angle`` about its centre."""
    c, s = math.cos(angle), math.sin(angle)
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h],
                        [-half_w, half_h]])
    return np.round(corners @ np.array([[c, s], [-s, c]]) + [cx, cy]).astype(np.int32)


def object_mask(rng, label, h, w):
    """(h, w) bool region of one ``disc`` (ellipse), ``box`` or ``stripes`` (rectangle)."""
    mask = np.zeros((h, w), np.uint8)
    size = min(h, w)
    cx, cy = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
    a, b = rng.uniform(0.15, 0.35, size=2) * size
    if CLASSES[label - 1] == 'disc':
        cv2.ellipse(mask, (round(cx), round(cy)), (round(a), round(b)),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        cv2.fillPoly(mask, [rotated_rect(cx, cy, a, b, rng.uniform(0, math.pi))], 1)
    return mask.astype(bool)


def render_scene(rng, h, w):
    """Returns an (h, w, 3) uint8 RGB image and its (h, w) uint8 label map (0 = other)."""
    img = ground_texture(rng, h, w)
    seg = np.full((h, w), CLASSES.index('ground') + 1, np.uint8)
    colours = {'disc': (215, 55, 45), 'box': (45, 75, 215)}
    for label in rng.permutation(np.arange(2, len(CLASSES) + 1))[:rng.integers(1, 4)]:
        name = CLASSES[label - 1]
        mask = object_mask(rng, label, h, w)
        if name == 'stripes':
            img[mask] = stripes_texture(rng, h, w)[mask]
        else:
            img[mask] = np.array(colours[name]) + rng.uniform(-35, 35, 3)
        seg[mask] = label
    for _ in range(rng.integers(0, 3)):  # clutter: small triangles of any colour
        centre = rng.uniform([0, 0], [w, h])
        tri = np.round(centre + rng.uniform(-0.08, 0.08, (3, 2)) * min(h, w)).astype(np.int32)
        clutter = np.zeros((h, w), np.uint8)
        cv2.fillPoly(clutter, [tri], 1)
        img[clutter.astype(bool)] = rng.uniform(0, 255, 3)
        seg[clutter.astype(bool)] = OTHER
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), seg


def make_toy_ade20k(out_dir, num_train=96, num_val=24, size=128, seed=0):
    """Writes the dataset under ``out_dir``; returns ``{'training': n, 'validation': n}``.

    Image ``i`` of a split depends only on ``(seed, split, i, size)``, so reruns give the same
    files. Height and width vary in ``[size - size // 8, size + size // 8]``.
    """
    if num_train < 1 or num_val < 1 or size < 32:
        raise ValueError(f'need at least one image per split and size >= 32, got '
                         f'train={num_train}, val={num_val}, size={size}')
    counts = {}
    for split_id, ((split, prefix), num) in enumerate(zip(SPLITS, (num_train, num_val))):
        img_dir = osp.join(out_dir, 'images', split)
        ann_dir = osp.join(out_dir, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(num):
            rng = np.random.default_rng([seed, split_id, i])
            h, w = rng.integers(size - size // 8, size + size // 8 + 1, size=2)
            img, seg = render_scene(rng, int(h), int(w))
            name = f'toy_{prefix}_{i + 1:06d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img[..., ::-1],
                        [cv2.IMWRITE_JPEG_QUALITY, 95])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), seg)
        counts[split] = num
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--train', type=int, default=96, help='training images')
    parser.add_argument('--val', type=int, default=24, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='typical image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    counts = make_toy_ade20k(args.out, args.train, args.val, args.size, args.seed)
    print(f'wrote {counts} images with classes {CLASSES} to {args.out}')


if __name__ == '__main__':
    main()
