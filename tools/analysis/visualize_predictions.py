"""Runs a trained detector (or segmentor) on images and writes them with predictions drawn.

    python tools/analysis/visualize_predictions.py CONFIG CHECKPOINT IMAGES...
        [--out-dir DIR] [--score-thr 0.3] [--device cpu] [--cfg-options KEY=VALUE ...]

IMAGES are files or folders (their .jpg/.jpeg/.png/.bmp files). Boxes, masks and class names
(mmdet) or label maps (mmseg) are drawn by the config's visualizer into
``--out-dir/<image name>.png``. For a whole test set with metrics, use
``tools/test.py CONFIG CHECKPOINT --show-dir DIR`` instead.
"""
import argparse
import os
import os.path as osp

import mmcv
from mmengine.config import Config, DictAction
from mmengine.registry import VISUALIZERS

import tnt_backbone  # noqa: F401  (registers our modules and the safe-load allow-list)

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def inference_api(scope):
    """(init_model, inference, extra add_datasample kwargs) of the config's library."""
    if scope == 'mmdet':
        from mmdet.apis import inference_detector, init_detector
        return init_detector, inference_detector, ('pred_score_thr', )
    if scope == 'mmseg':
        from mmseg.apis import inference_model, init_model
        return init_model, inference_model, ()
    raise SystemExit(f'visualize_predictions: no inference API for default_scope {scope!r} '
                     f'(mmdet and mmseg configs are supported)')


def list_images(paths):
    images = []
    for path in paths:
        if osp.isdir(path):
            images += sorted(osp.join(path, f) for f in os.listdir(path)
                             if f.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(path):
            images.append(path)
        else:
            raise SystemExit(f'image or folder not found: {path}')
    if not images:
        raise SystemExit(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {paths}')
    return images


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw a model\'s predictions on images')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument('--out-dir', default='work_dirs/predictions')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detections below this score are not drawn')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings')
    return parser.parse_args(argv)


def main(argv=None):
    """Writes one PNG per image; returns their paths."""
    args = parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    images = list_images(args.images)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_model, inference, extra = inference_api(cfg.get('default_scope'))
    model = init_model(cfg, args.checkpoint, device=args.device)
    visualizer = VISUALIZERS.build(cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    kwargs = {'pred_score_thr': args.score_thr} if 'pred_score_thr' in extra else {}
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path in images:
        result = inference(model, path)
        name = osp.splitext(osp.basename(path))[0]
        out_file = osp.join(args.out_dir, f'{name}.png')
        visualizer.add_datasample(name, mmcv.imread(path, channel_order='rgb'), result,
                                  draw_gt=False, show=False, out_file=out_file, **kwargs)
        written.append(out_file)
    print(f'{len(written)} images written to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
