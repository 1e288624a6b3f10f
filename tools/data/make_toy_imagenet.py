"""Generates a small ImageNet-layout dataset of visually distinct synthetic classes.

Layout written under ``--out``::

    train/<class>/<class>_0000.JPEG ...   val/<class>/<class>_0000.JPEG ...
    meta/train.txt, meta/val.txt           lines "<class>/<file>.JPEG <label>"

Classes, labelled in sorted order as ImageNet's lists are: checkerboard, stripes (two random
colours, random period and phase), circle, square, triangle (a filled light shape of random
colour, size and place on a noisy dark background of random colour). The output depends only
on the arguments.

    python tools/data/make_toy_imagenet.py --out data/toy_imagenet
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np

CLASSES = ('checkerboard', 'circle', 'square', 'stripes', 'triangle')  # sorted


def _two_colours(rng):
    """Two random BGR colours that differ by at least 100 in some channel."""
    while True:
        a, b = rng.integers(0, 256, (2, 3))
        if np.abs(a - b).max() >= 100:
            return tuple(int(v) for v in a), tuple(int(v) for v in b)


def _shape(name, size, rng):
    # a light shape on a dark background: random hues, one contrast polarity
    back = tuple(int(v) for v in rng.integers(0, 100, 3))
    fore = tuple(int(v) for v in rng.integers(155, 256, 3))
    img = np.empty((size, size, 3), np.float32)
    img[:] = back
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
    r = rng.uniform(0.28, 0.42) * size
    cx, cy = rng.uniform(r, size - r, 2)
    if name == 'circle':
        cv2.circle(img, (int(cx), int(cy)), int(r), fore, -1, cv2.LINE_AA)
        return img
    if name == 'square':
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * r / np.sqrt(2)
        angle = rng.uniform(-0.25, 0.25)  # radians: stays a square, never a diamond
    else:
        corners = np.array([[np.cos(a), np.sin(a)] for a in np.pi / 2 + np.arange(3) * 2 *
                            np.pi / 3]) * r * -1
        angle = rng.uniform(-0.3, 0.3)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = (corners @ rot.T + [cx, cy]).round().astype(np.int32)
    cv2.fillPoly(img, [pts], fore, cv2.LINE_AA)
    return img


def _texture(name, size, rng):
    a, b = _two_colours(rng)
    period = int(rng.integers(8, 17))
    yy, xx = np.mgrid[:size, :size] + rng.integers(0, period, (2, 1, 1))
    if name == 'stripes':
        on = (yy // (period // 2)) % 2 == 0
    else:
        on = ((yy // (period // 2)) + (xx // (period // 2))) % 2 == 0
    img = np.where(on[..., None], np.array(a, np.float32), np.array(b, np.float32))
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)


def draw(name, size, rng):
    """One (size, size, 3) uint8 BGR image of class ``name``."""
    if name in ('stripes', 'checkerboard'):
        return _texture(name, size, rng)
    return _shape(name, size, rng)


def make_toy_imagenet(out, num_train=64, num_val=40, size=80, classes=CLASSES, seed=0):
    """Writes the dataset to ``out`` (which must not exist or be empty); returns ``out``.

    Args:
        out (str): Output folder.
        num_train (int): Training images per class. Defaults to 64.
        num_val (int): Validation images per class. Defaults to 40.
        size (int): Image side in pixels. Defaults to 80.
        classes (Sequence[str]): Names from :data:`CLASSES`. Defaults to all five.
        seed (int): Defaults to 0.
    """
    classes = sorted(classes)
    unknown = set(classes) - set(CLASSES)
    if unknown:
        raise ValueError(f'unknown toy classes {sorted(unknown)}; choose from {CLASSES}')
    if osp.exists(out) and os.listdir(out):
        raise FileExistsError(f'{out} exists and is not empty; choose another --out')
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out, 'meta'), exist_ok=True)
    for split, num in (('train', num_train), ('val', num_val)):
        lines = []
        for label, name in enumerate(classes):
            os.makedirs(osp.join(out, split, name), exist_ok=True)
            for i in range(num):
                rel = f'{name}/{name}_{i:04d}.JPEG'
                cv2.imwrite(osp.join(out, split, rel), draw(name, size, rng),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
                lines.append(f'{rel} {label}\n')
        with open(osp.join(out, 'meta', f'{split}.txt'), 'w') as f:
            f.writelines(lines)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', required=True, help='output folder (must not exist or be empty)')
    parser.add_argument('--num-train', type=int, default=64, help='training images per class')
    parser.add_argument('--num-val', type=int, default=40, help='validation images per class')
    parser.add_argument('--size', type=int, default=80, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    make_toy_imagenet(args.out, args.num_train, args.num_val, args.size, seed=args.seed)
    print(f'wrote {len(CLASSES)} classes x ({args.num_train} train + {args.num_val} val) '
          f'images of {args.size} px to {args.out}')


if __name__ == '__main__':
    main()
