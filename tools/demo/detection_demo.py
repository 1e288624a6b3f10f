"""`make demo`: Mask R-CNN with a TNT-Ti backbone, trained and evaluated on a CPU in minutes.

1. generates the toy COCO dataset into data/toy_coco (skipped when present);
2. trains configs/detection/mask-rcnn_tnt-ti-p16_fpn_toy.py from scratch with tools/train.py
   (``--resume``: an interrupted demo continues, a finished one is not retrained);
3. evaluates the final checkpoint with tools/test.py (COCO bbox and segm mAP through
   pycocotools) and draws the predictions on every val image into <work dir>/predictions/.

Each step prints the command it runs, so it can be repeated by hand.
"""
import argparse
import glob
import os
import os.path as osp
import time

from common import ROOT, ensure_data, print_summary, train_and_evaluate

CONFIG = 'configs/detection/mask-rcnn_tnt-ti-p16_fpn_toy.py'
DATA_ROOT = 'data/toy_coco'  # the config's data_root


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/mask-rcnn_tnt-ti-p16_fpn_toy')
    return parser.parse_args()


def main():
    args = parse_args()
    os.chdir(ROOT)
    start = time.time()
    ensure_data('make_toy_coco.py', DATA_ROOT,
                osp.isfile(osp.join(DATA_ROOT, 'annotations', 'instances_val.json')))
    show_dir = osp.join(args.work_dir, 'predictions')
    _, metrics = train_and_evaluate(CONFIG, args.work_dir, show_dir)

    pngs = glob.glob(osp.join(show_dir, '*.png'))
    print_summary(
        [f'Toy COCO val set, Mask R-CNN TNT-Ti/16 from scratch ({time.time() - start:.0f} s):']
        + [f'  {kind} mAP {metrics[f"coco/{kind}_mAP"]:.3f}   '
           f'AP50 {metrics[f"coco/{kind}_mAP_50"]:.3f}   '
           f'AP75 {metrics[f"coco/{kind}_mAP_75"]:.3f}' for kind in ('bbox', 'segm')]
        + [f'  {len(pngs)} prediction images in {show_dir}/',
           f'  checkpoint and logs in {args.work_dir}/'])


if __name__ == '__main__':
    main()
