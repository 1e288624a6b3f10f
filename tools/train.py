"""Trains a model from any config of this project (mmdet, mmseg or classification).

A thin wrapper over mmengine's ``Runner``: the config's ``default_scope`` picks the library.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--force]
                          [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm]

``--resume`` alone continues from the latest checkpoint in the work dir; ``--resume CKPT``
from that file. A fresh run refuses a work dir that already holds checkpoints (``*.pth``)
unless ``--force`` is given, so no trained weights are overwritten by accident.
"""
import argparse
import glob
import os
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

import tnt_backbone  # noqa: F401  (registers our modules and the safe-load allow-list)


def add_common_args(parser):
    """Arguments shared by ``train.py`` and ``test.py``."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go; defaults to '
                        './work_dirs/<config name>')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_dataloader.batch_size=4 '
        'model.backbone.drop_path_rate=0.2 (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher (pytorch: torchrun, see tools/dist_train.sh)')
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)


def load_config(args):
    """Config from ``args.config`` with work dir, overrides and launcher applied."""
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    if args.launcher != 'none':
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def setup_cpu_distributed(cfg):
    """Makes a torchrun launch work on a machine without CUDA: processes talk through gloo.

    mmengine 0.10 assumes GPUs there: its pytorch launcher calls ``torch.cuda.set_device``
    (which a CPU-only torch lacks) and it wraps the model with ``device_ids=[LOCAL_RANK]``. The
    Runner keeps a process group that already exists, and ``device_ids=None`` means the CPU.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model with mmengine\'s Runner')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--resume', nargs='?', const='auto', metavar='CKPT',
        help='resume training: alone, from the latest checkpoint in the work dir; '
        'with a path, from that checkpoint')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision (needs a GPU)')
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
        if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
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
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
