"""Parameters and FLOPs (multiply-accumulates) of a TNT backbone or of a whole model config.

    python tools/analysis/get_flops.py --arch small --shape 224 224
    python tools/analysis/get_flops.py --model pyramid-tnt --arch small --shape 256 256
    python tools/analysis/get_flops.py --config configs/detection/mask-rcnn_tnt-s-p16_fpn_1x_coco.py --shape 800 1333
    python tools/analysis/get_flops.py --config mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py --shape 800 1333

Counted with mmengine's FlopAnalyzer, taught the one op it does not know here:
``scaled_dot_product_attention`` (two matmuls of Nq x Nk x head_dim per head).
"""
import argparse
from math import prod

import torch
from mmengine.analysis import FlopAnalyzer, parameter_count


def sdpa_flop(inputs, outputs):
    q, k = (i.type().sizes() for i in inputs[:2])
    return 2 * prod(q[:-1]) * k[-2] * q[-1]  # q @ k^T and attn @ v


def count(model, inputs):
    """(multiply-accumulates, parameters) of ``model(*inputs)``.

    Traced without autograd: with gradients on, the MLP's fused GELU-Linear is a custom
    autograd function whose matmul the tracer cannot see.
    """
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::scaled_dot_product_attention', sdpa_flop)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with torch.no_grad():
        return analyzer.total(), parameter_count(model)['']


def backbone_model(args):
    if getattr(args, 'model', 'tnt') == 'pyramid-tnt':  # as a classifier: pooled last stage
        from tnt_backbone.models import PyramidTNT
        return PyramidTNT(arch=args.arch, out_indices=(3,), out_type='avg_featmap').eval()
    from tnt_backbone.models import TNT
    return TNT(arch=args.arch, layout=args.layout, out_type=args.out_type,
               out_indices=(-1,) if args.out_type == 'cls_token' else (2, 5, 8, 11)).eval()


class ConfigTensorModel(torch.nn.Module):
    """Runs a detector/segmentor built from a config on a plain (1, 3, H, W) image tensor.

    Its ``_forward`` (the network without post-processing, as mmdet's and mmseg's own
    get_flops count it) needs data samples that describe the image: made here.
    """

    def __init__(self, model, scope):
        super().__init__()
        self.model = model
        self.scope = scope

    def forward(self, x):
        hw = tuple(x.shape[-2:])
        if self.scope == 'mmseg':
            from mmseg.structures import SegDataSample
            sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw, pad_shape=hw))
        else:
            from mmdet.structures import DetDataSample
            sample = DetDataSample(metainfo=dict(
                img_shape=hw, ori_shape=hw, pad_shape=hw, batch_input_shape=hw,
                scale_factor=(1., 1.)))
        return self.model._forward(x, [sample])


def config_model(path):
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from tnt_backbone.apis import config_path
    cfg = Config.fromfile(config_path(path))
    cfg.model.backbone.pop('init_cfg', None)
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    return ConfigTensorModel(MODELS.build(cfg.model), scope).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', help='a model config (a path, or mmdet::/mmseg:: for one '
                        'shipped in that package); else a bare backbone')
    parser.add_argument('--model', default='tnt', choices=['tnt', 'pyramid-tnt'],
                        help='the bare backbone counted without --config')
    parser.add_argument('--arch', default='small')
    parser.add_argument('--layout', default='v2')
    parser.add_argument('--out-type', default='cls_token',
                        choices=['cls_token', 'featmap'])
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224])
    args = parser.parse_args()
    model = config_model(args.config) if args.config else backbone_model(args)
    flops, params = count(model, (torch.randn(1, 3, *args.shape),))
    what = args.config or (f'PyramidTNT-{args.arch}' if args.model == 'pyramid-tnt' else
                           f'TNT-{args.arch} ({args.layout}, {args.out_type})')
    print(f'{what} @ {args.shape[0]}x{args.shape[1]}: {params / 1e6:.2f} M params, '
          f'{flops / 1e9:.2f} GMACs')


if __name__ == '__main__':
    main()
