"""Generates a small COCO-format instance-segmentation dataset of coloured shapes.

Each image shows 1 to ``max_objects`` non-overlapping shapes (circle, square, triangle; random
size, rotation and a jittered class colour) on a noisy, low-frequency textured background.
Every shape is drawn from the same polygon that is stored as its mask, so boxes, polygons and
pixels agree. The output is deterministic for a given seed.

Layout under ``--out`` (what ``configs/detection/mask-rcnn_tnt-ti-p16_fpn_toy.py`` reads)::

    annotations/instances_train.json   annotations/instances_val.json
    images/train/000001.png ...        images/val/000001.png ...

Usage::

    python tools/data/make_toy_coco.py --out data/toy_coco --train 300 --val 60 --size 128
"""
import argparse
import json
import math
import os
import os.path as osp

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle')
# RGB; far apart so colour alone already separates the classes, shape confirms it
CLASS_COLOURS = ((220, 50, 50), (40, 190, 60), (50, 80, 220))
CIRCLE_VERTICES = 24
SUBPIXEL_BITS = 4  # cv2.fillPoly precision, so drawn pixels follow the float polygon


def shape_polygon(label, cx, cy, radius, angle):
    """Vertices (K, 2) in pixels of shape ``label`` inscribed in a circle of ``radius``."""
    num = {'circle': CIRCLE_VERTICES, 'square': 4, 'triangle': 3}[CLASSES[label]]
    theta = angle + np.arange(num) * 2 * math.pi / num
    return np.stack([cx + radius * np.cos(theta), cy + radius * np.sin(theta)], axis=1)


def polygon_area(poly):
    """Shoelace area of a (K, 2) polygon."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def textured_background(rng, size):
    """(size, size, 3) uint8: smooth random colour blobs plus pixel noise."""
    coarse = rng.uniform(70, 180, size=(6, 6, 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


def place_shapes(rng, size, max_objects, min_frac=0.1, max_frac=0.22, tries=50):
    """Random (label, cx, cy, radius, angle) tuples whose circumcircles do not overlap."""
    shapes = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _ in range(tries):
            r = rng.uniform(min_frac, max_frac) * size
            cx, cy = rng.uniform(r + 1, size - r - 1, size=2)
            if all(math.hypot(cx - x, cy - y) > r + s + 2 for _, x, y, s, _ in shapes):
                shapes.append((int(rng.integers(len(CLASSES))), cx, cy, r,
                               rng.uniform(0, 2 * math.pi)))
                break
    return shapes


def render_image(rng, size, max_objects):
    """Returns an RGB image (size, size, 3) uint8 and a list of (label, polygon (K, 2))."""
    img = textured_background(rng, size)
    objects = []
    for label, cx, cy, r, angle in place_shapes(rng, size, max_objects):
        poly = shape_polygon(label, cx, cy, r, angle)
        colour = np.clip(np.array(CLASS_COLOURS[label]) + rng.integers(-30, 31, 3), 0, 255)
        pts = np.round(poly * (1 << SUBPIXEL_BITS)).astype(np.int32)
        cv2.fillPoly(img, [pts], [int(c) for c in colour], lineType=cv2.LINE_8,
                     shift=SUBPIXEL_BITS)
        objects.append((label, poly))
    noise = rng.normal(0, 6, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), objects


def annotation(ann_id, image_id, label, poly):
    """One COCO annotation dict: category ids are 1-based, bbox is [x, y, w, h]."""
    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    return dict(id=ann_id, image_id=image_id, category_id=label + 1, iscrowd=0,
                area=round(polygon_area(poly), 2),
                bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                segmentation=[[round(float(v), 2) for v in poly.reshape(-1)]])


def make_split(out_dir, split, num_images, size, max_objects, rng):
    """Writes ``images/{split}/*.png`` and returns the split's COCO dict."""
    img_dir = osp.join(out_dir, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        img, objects = render_image(rng, size, max_objects)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(osp.join(img_dir, file_name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append(dict(id=image_id, file_name=file_name, width=size, height=size))
        for label, poly in objects:
            annotations.append(annotation(len(annotations) + 1, image_id, label, poly))
    return dict(
        info=dict(description=f'toy shapes ({split})', version='1.0'), licenses=[],
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(CLASSES)])


def make_toy_coco(out_dir, num_train=300, num_val=60, size=128, max_objects=4, seed=0):
    """Generates the dataset under ``out_dir``; returns {split: annotation file path}."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one image per split, got train={num_train}, '
                         f'val={num_val}')
    if size < 32:
        raise ValueError(f'image size must be at least 32 px, got {size}')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    ann_files = {}
    for split, num in (('train', num_train), ('val', num_val)):
        coco = make_split(out_dir, split, num, size, max_objects, rng)
        ann_files[split] = osp.join(out_dir, 'annotations', f'instances_{split}.json')
        with open(ann_files[split], 'w') as f:
            json.dump(coco, f)
    return ann_files


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--train', type=int, default=300, help='number of train images')
    parser.add_argument('--val', type=int, default=60, help='number of val images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--max-objects', type=int, default=4, help='shapes per image, at most')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    files = make_toy_coco(args.out, args.train, args.val, args.size, args.max_objects,
                          args.seed)
    for split, path in files.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
