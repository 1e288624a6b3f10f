"""Draws the ground truth of a config's dataset, after its pipeline, into PNG files.

    python tools/analysis/browse_dataset.py CONFIG [--split train|val|test] [--num 20]
        [--output-dir DIR] [--show] [--cfg-options KEY=VALUE ...]

What the model is trained on: augmentations applied, boxes/masks (mmdet) or label maps (mmseg)
drawn by the config's visualizer. Files go to ``--output-dir`` (default
``work_dirs/browse_dataset/<config name>/<split>``); ``--show`` also opens a window.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import DATASETS, VISUALIZERS, init_default_scope

import tnt_backbone  # noqa: F401  (registers our modules)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw a dataset\'s ground truth after its '
                                     'pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument('--split', choices=['train', 'val', 'test'], default='train')
    parser.add_argument('--num', type=int, default=20, help='how many samples (from the start)')
    parser.add_argument('--output-dir', help='where the PNGs go')
    parser.add_argument('--show', action='store_true', help='also display each image')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds each is shown')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return parser.parse_args(argv)


def to_rgb_image(inputs):
    """Packed (C, H, W) BGR uint8 tensor -> (H, W, C) RGB array, as the visualizers take."""
    return inputs.permute(1, 2, 0).numpy()[..., ::-1].copy()


def drawable(sample):
    """mmdet packs boxes as box objects (``HorizontalBoxes``); its visualizer draws tensors."""
    boxes = sample.get('gt_instances', {}).get('bboxes')
    if boxes is not None and hasattr(boxes, 'tensor'):
        sample.gt_instances.bboxes = boxes.tensor
    return sample


def main(argv=None):
    """Writes the images; returns their paths."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    out_dir = args.output_dir or osp.join(
        'work_dirs', 'browse_dataset', osp.splitext(osp.basename(args.config))[0], args.split)
    os.makedirs(out_dir, exist_ok=True)

    dataset = DATASETS.build(cfg[f'{args.split}_dataloader'].dataset)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = dataset.metainfo
    written = []
    for i in range(min(args.num, len(dataset))):
        item = dataset[i]
        sample = drawable(item['data_samples'])
        name = osp.splitext(osp.basename(sample.img_path))[0]
        out_file = osp.join(out_dir, f'{i:04d}_{name}.png')
        visualizer.add_datasample(name, to_rgb_image(item['inputs']), sample, draw_pred=False,
                                  show=args.show, wait_time=args.wait_time, out_file=out_file)
        written.append(out_file)
    print(f'{len(written)} images written to {out_dir}')
    return written


if __name__ == '__main__':
    main()
