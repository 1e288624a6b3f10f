"""Evaluates a checkpoint with any config of this project (mmdet, mmseg or classification).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR]
                         [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

Metrics come from the config's ``test_evaluator`` (COCO bbox/segm mAP through pycocotools for
the detection configs). ``--show-dir DIR`` turns on the config's visualization hook and writes
every test image with the predictions drawn (same file name): into DIR for mmdet's
``DetVisualizationHook``, into ``DIR/vis_data/vis_image`` for hooks that draw through the
visualizer's backends (mmseg's ``SegVisualizationHook``). Under ``tools/dist_test.sh`` only the
images of process 0 are drawn (the visualizers draw on the master process only).
"""
import argparse
import inspect
import os.path as osp

from mmengine.registry import HOOKS
from mmengine.runner import Runner

from train import add_common_args, load_config, setup_cpu_distributed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--show-dir', help='write images with the predictions drawn here')
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_visualization(cfg, show_dir):
    """Makes the config's ``default_hooks.visualization`` draw every test image to show_dir."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit('--show-dir: the config has no default_hooks.visualization to draw '
                         'predictions with')
    with HOOKS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        hook_cls = registry.get(hook['type'])
    params = inspect.signature(hook_cls.__init__).parameters
    show_dir = osp.abspath(show_dir)
    hook.draw = True
    if 'interval' in params:
        hook.interval = 1
    if 'test_out_dir' in params:  # mmdet: writes PNGs to this folder itself
        hook.test_out_dir = show_dir
    else:  # the hook draws through the visualizer's vis backends
        cfg.visualizer.save_dir = show_dir


def main(argv=None):
    """Evaluates; returns the metrics dict (e.g. ``coco/bbox_mAP``)."""
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    return runner.test()


if __name__ == '__main__':
    main()
