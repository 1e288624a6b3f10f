"""Converts a TNT checkpoint (timm v2/legacy, official huawei-noah release, mmpretrain, or ours)
to this project's format, once, so configs can point ``init_cfg`` at it.

The output is a classifier-style checkpoint: ``state_dict`` with ``backbone.*`` keys (and
``head.fc.*`` if the source has a classifier head) plus ``meta`` naming the source and layout.
Both the backbone's ``init_cfg=dict(type='Pretrained', ...)`` and our classifier load it.

    python tools/model_converters/tnt2mm.py tnt_s_patch16_224.pth checkpoints/tnt-s-p16_in1k.pth
"""
import argparse
import os
import sys

import torch

from tnt_backbone.checkpoint import convert_tnt_checkpoint
from tnt_backbone.engine import load_state_dict_from


def convert_file(src, dst, overwrite=False, ema=True):
    """Converts ``src`` (a file or an http(s) URL) into ``dst``; refuses to replace an existing
    ``dst`` unless asked. ``ema``: take a training checkpoint's EMA weights if it has them."""
    if os.path.exists(dst) and not overwrite:
        raise FileExistsError(f'{dst} exists; pass --overwrite to replace it')
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError('source and destination are the same file')
    sd, source, layout = convert_tnt_checkpoint(load_state_dict_from(src, ema=ema))
    state_dict = {(k if k.startswith('head.') else f'backbone.{k}'): v.contiguous()
                  for k, v in sd.items()}
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=state_dict, meta=dict(tnt_source=source, tnt_layout=layout)), dst)
    return source, layout


def main(argv=None):
    parser = argparse.ArgumentParser(description='Convert a TNT checkpoint to tnt_backbone keys')
    parser.add_argument('src', help='timm / official / mmpretrain / tnt_backbone checkpoint: '
                        '.pth, .pth.tar, .bin, .safetensors, or an http(s) URL')
    parser.add_argument('dst', help='output .pth path')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing dst')
    parser.add_argument('--no-ema', dest='ema', action='store_false',
                        help='take state_dict, not the EMA weights, of a training checkpoint')
    args = parser.parse_args(argv)
    try:
        source, layout = convert_file(args.src, args.dst, args.overwrite, args.ema)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError, ConnectionError) as e:
        sys.exit(f'error: {e}')
    print(f'converted {source} TNT checkpoint (layout {layout}) -> {args.dst}')


if __name__ == '__main__':
    main()
