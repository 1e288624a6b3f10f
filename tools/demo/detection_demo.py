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
import importlib.util
import os
import os.path as osp
import shlex
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = 'configs/detection/mask-rcnn_tnt-ti-p16_fpn_toy.py'
DATA_ROOT = 'data/toy_coco'  # the config's data_root


def run(cmd):
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    subprocess.run([sys.executable] + cmd[1:] if cmd[0] == 'python' else cmd, check=True,
                   cwd=ROOT)


def final_checkpoint(work_dir):
    """The checkpoint mmengine recorded last (``last_checkpoint`` holds its path)."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def evaluate(checkpoint, work_dir, show_dir):
    """tools/test.py in this process, to get its metrics dict back."""
    cmd = ['python', 'tools/test.py', CONFIG, checkpoint, '--work-dir', work_dir,
           '--show-dir', show_dir]
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    sys.path.insert(0, osp.join(ROOT, 'tools'))  # test.py imports its sibling train.py
    spec = importlib.util.spec_from_file_location('tnt_test_tool', 'tools/test.py')
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)
    return test_tool.main(cmd[2:])


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/mask-rcnn_tnt-ti-p16_fpn_toy')
    return parser.parse_args()


def main():
    args = parse_args()
    os.chdir(ROOT)
    start = time.time()
    if osp.isfile(osp.join(DATA_ROOT, 'annotations', 'instances_val.json')):
        print(f'Toy dataset found in {DATA_ROOT} (delete it to regenerate).')
    else:
        run(['python', 'tools/data/make_toy_coco.py', '--out', DATA_ROOT])
    run(['python', 'tools/train.py', CONFIG, '--work-dir', args.work_dir, '--resume'])
    show_dir = osp.join(args.work_dir, 'predictions')
    metrics = evaluate(final_checkpoint(args.work_dir), args.work_dir, show_dir)

    pngs = glob.glob(osp.join(show_dir, '*.png'))
    print('\n' + '=' * 72)
    print(f'Toy COCO val set, Mask R-CNN TNT-Ti/16 from scratch ({time.time() - start:.0f} s):')
    for kind in ('bbox', 'segm'):
        print(f'  {kind} mAP {metrics[f"coco/{kind}_mAP"]:.3f}   '
              f'AP50 {metrics[f"coco/{kind}_mAP_50"]:.3f}   '
              f'AP75 {metrics[f"coco/{kind}_mAP_75"]:.3f}')
    print(f'  {len(pngs)} prediction images in {show_dir}/')
    print(f'  checkpoint and logs in {args.work_dir}/')
    print('=' * 72)


if __name__ == '__main__':
    main()
