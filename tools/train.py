"""Trains a model from any config of this project (mmdet, mmseg or classification).

A thin wrapper over mmengine's ``Runner``: the config's ``default_scope`` picks the library.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--force]
                          [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

``--amp`` trains in mixed precision (``tnt_backbone.AmpOptimWrapper``): on a GPU fp16 autocast
with dynamic loss scaling, or bf16 with ``--cfg-options optim_wrapper.dtype=bfloat16``; on a
CPU bf16 autocast without loss scaling.

``--cfg-options compile=True`` (or ``torch.compile`` arguments as its keys, e.g.
``compile.mode=max-autotune-no-cudagraphs``) compiles the backbone in place, as
``tools/test.py --compile`` does, instead of mmengine's whole ``train_step``: with torch 2.13,
dynamo fails inside the optimizer step that mmengine 0.10's ``train_step`` includes.

``--resume`` alone continues from the latest checkpoint in the work dir; ``--resume CKPT``
from that file. A fresh run refuses a work dir that already holds checkpoints (``*.pth``)
unless ``--force`` is given, so no trained weights are overwritten by accident.
"""
import argparse
import glob
import os.path as osp

from mmengine.runner import Runner

# importing the package registers our modules and the safe-load allow-list
from tnt_backbone.apis import (add_common_args, compile_backbones, end_distributed, load_config,
                               setup_cpu_distributed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmengine\'s Runner')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CKPT',
        help='resume training: alone, from the latest checkpoint in the work dir; '
        'with a path, from that checkpoint')
    parser.add_argument(
        '--amp', action='store_true',
        help='automatic mixed precision: on a GPU fp16 with dynamic loss scaling (bf16 with '
        '--cfg-options optim_wrapper.dtype=bfloat16), on a CPU bf16')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by the total batch size (config\'s auto_scale_lr)')
    parser.add_argument('--force', action='store_true',
                        help='start from scratch even if the work dir holds checkpoints '
                        '(they are overwritten)')
    add_common_args(parser)
    return parser.parse_args(argv)


def check_work_dir(work_dir, resume, force):
    """Refuses a fresh run into a work dir with checkpoints (unless resuming or forced)."""
    ckpts = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    if ckpts and not resume and not force:
        names = ', '.join(osp.basename(c) for c in ckpts[:3]) + (', ...' if len(ckpts) > 3
                                                                   else '')
        raise SystemExit(
            f'work dir {work_dir} already holds checkpoints ({names}). Pass --resume to '
            f'continue from the latest, --work-dir to train elsewhere, or --force to start '
            f'from scratch and overwrite them.')


def apply_train_args(cfg, args):
    if args.amp:
        # ours is mmengine's on a GPU and also runs on a CPU, where mmengine's refuses to
        cfg.optim_wrapper.type = 'tnt_backbone.AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit(f'--auto-scale-lr: {args.config} has no '
                             f'auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise SystemExit(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume, cfg.load_from = True, args.resume
    check_work_dir(cfg.work_dir, bool(cfg.get('resume')), args.force)


def main(argv=None):
    """Trains; returns the runner (its ``iter``/``epoch`` and ``message_hub`` hold the state)."""
    args = parse_args(argv)
    cfg = load_config(args)
    apply_train_args(cfg, args)
    setup_cpu_distributed(cfg)
    compile_cfg = cfg.pop('compile', None)  # not mmengine's: see the module docstring
    if not isinstance(compile_cfg, (bool, dict, type(None))):
        raise SystemExit(f'compile must be True or torch.compile arguments as its keys '
                         f'(compile.mode=...), got {compile_cfg!r}')
    runner = Runner.from_cfg(cfg)
    if compile_cfg:
        compile_backbones(runner.model, **({} if compile_cfg is True else compile_cfg))
    runner.train()
    return runner


if __name__ == '__main__':
    main()
    end_distributed()  # once main's Runner, whose DDP wrapper holds the group, is dropped
