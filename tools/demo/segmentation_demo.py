"""`make demo-seg`: UperNet with a TNT-Ti backbone, trained and evaluated on a CPU in minutes.

1. generates the toy ADE20K-format dataset into data/toy_ade20k (skipped when present);
2. trains configs/segmentation/upernet_tnt-ti-p16_toy-ade20k-128x128.py from scratch
   with tools/train.py (``--resume``: an interrupted demo continues, a finished one is not
   retrained);
3. evaluates the final checkpoint with tools/test.py (mIoU, per-class IoU) and writes every val
   image with its ground truth and prediction colourised side by side into
   <work dir>/predictions/vis_data/vis_image/.

Each step prints the command it runs, so it can be repeated by hand.
"""
import argparse
import glob
import os
import os.path as osp
import time

import cv2
import numpy as np

from common import ROOT, ensure_data, print_summary, train_and_evaluate

CONFIG = 'configs/segmentation/upernet_tnt-ti-p16_toy-ade20k-128x128.py'
DATA_ROOT = 'data/toy_ade20k'  # the config's data_root
NUM_CLASSES = 4  # ground, disc, box, stripes


def all_ground_miou(data_root, num_classes):
    """mIoU of predicting "ground" (class 0) everywhere on the val set: the score to beat."""
    counts = np.zeros(num_classes + 1)
    for png in glob.glob(osp.join(data_root, 'annotations', 'validation', '*.png')):
        counts += np.bincount(cv2.imread(png, cv2.IMREAD_UNCHANGED).ravel(),
                              minlength=num_classes + 1)[:num_classes + 1]
    return 100 * counts[1] / counts[1:].sum() / num_classes  # PNG 0 is "other": ignored


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir',
                        default='work_dirs/upernet_tnt-ti-p16_toy-ade20k-128x128')
    return parser.parse_args()


def main():
    args = parse_args()
    os.chdir(ROOT)
    start = time.time()
    ensure_data('make_toy_ade20k.py', DATA_ROOT,
                glob.glob(osp.join(DATA_ROOT, 'annotations', 'validation', '*.png')))
    show_dir = osp.join(args.work_dir, 'predictions')
    _, metrics = train_and_evaluate(CONFIG, args.work_dir, show_dir)

    pngs = glob.glob(osp.join(show_dir, 'vis_data', 'vis_image', '*.png'))
    print_summary([
        f'Toy ADE20K val set, UperNet TNT-Ti/16 from scratch ({time.time() - start:.0f} s):',
        f'  mIoU {metrics["mIoU"]:.1f}   mAcc {metrics["mAcc"]:.1f}   aAcc {metrics["aAcc"]:.1f}'
        f'   (predicting "ground" everywhere: mIoU '
        f'{all_ground_miou(DATA_ROOT, NUM_CLASSES):.1f})',
        f'  {len(pngs)} prediction images (ground truth | prediction) in '
        f'{osp.dirname(pngs[0]) if pngs else show_dir}/',
        f'  checkpoint and logs in {args.work_dir}/'])


if __name__ == '__main__':
    main()
