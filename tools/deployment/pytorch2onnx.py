"""Exports a config's network to ONNX and checks it with ONNX Runtime.

    python tools/deployment/pytorch2onnx.py CONFIG [CHECKPOINT] --shape H W --out FILE
                                            [--dynamic]

Detection/segmentation configs: the backbone and neck (feature maps); classification configs:
the whole classifier (logits). The input is the normalised image (see
:mod:`tnt_backbone.export`); heads' post-processing (NMS, RoI ops) is mmdeploy's. ``--dynamic``
frees batch, height and width (any size, not only multiples of 16). Without a checkpoint the
weights are random (a structural export). After writing FILE, the ONNX Runtime outputs are
compared with PyTorch's at the export size (and at another size with ``--dynamic``).
"""
import argparse
import os

import torch

from tnt_backbone.export import export_onnx, exportable_model, onnx_max_rel_error


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint file or URL (optional)')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'))
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and not args.overwrite:
        raise SystemExit(f'{args.out} exists; pass --overwrite to replace it')
    net = exportable_model(args.config, args.checkpoint)
    export_onnx(net, tuple(args.shape), args.out, dynamic=args.dynamic)
    shapes = [tuple(args.shape)]
    if args.dynamic:  # another size, not a multiple of 16
        shapes.append((args.shape[0] + 23, args.shape[1] - 9))
    errors = {}
    for shape in shapes:
        errors[shape] = onnx_max_rel_error(net, args.out, torch.randn(1, 3, *shape))
        print(f'{args.out}: ONNX Runtime vs PyTorch at {shape[0]}x{shape[1]}: max relative '
              f'error {errors[shape]:.1e}')
    return errors


if __name__ == '__main__':
    main()
