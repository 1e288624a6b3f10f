"""Time and peak memory of one training iteration of a whole detection/segmentation config.

    python tools/analysis/train_iter_cost.py configs/detection/mask-rcnn_tnt-s-p16_fpn_1x_coco.py \
        --shape 800 1333 --batch 2
    python tools/analysis/train_iter_cost.py \
        configs/segmentation/upernet_tnt-s-p16_8xb2-160k_ade20k-512x512.py --shape 512 512

The model is built from the config without its pretrained checkpoint (random weights cost the
same) and fed a generated batch of the given size (detection: 5 boxes with masks per image;
segmentation: a random label map). One iteration = data preprocessing, forward with losses,
backward and the optimizer step. Reported: median seconds over ``--iters`` iterations after
one warm-up, and the growth of the process's peak RSS over the built model's.
"""
import argparse
import statistics
import time

import torch
from mmengine.config import Config, DictAction
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from tnt_backbone.apis import peak_rss_mib


def detection_batch(batch, hw, num_classes):
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=batch, image_shapes=[(3, *hw)] * batch,
                          num_items=[5] * batch, num_classes=num_classes, with_mask=True)


def segmentation_batch(batch, hw, num_classes):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    inputs, samples = [], []
    for _ in range(batch):
        inputs.append(torch.randint(0, 256, (3, *hw), dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *hw)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def make_batch(cfg, batch, hw):
    if cfg.default_scope == 'mmseg':
        return segmentation_batch(batch, hw, cfg.model.decode_head.num_classes)
    heads = cfg.model.get('roi_head', {}).get('bbox_head') or cfg.model.bbox_head
    head = heads[-1] if isinstance(heads, list) else heads
    return detection_batch(batch, hw, head.num_classes)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides, e.g. model.backbone.with_cp=True')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = make_batch(cfg, args.batch, tuple(args.shape))
    base = peak_rss_mib()

    times = []
    for _ in range(args.iters + 1):
        start = time.perf_counter()
        losses = model(**model.data_preprocessor(batch, True), mode='loss')
        optim_wrapper.update_params(model.parse_losses(losses)[0])
        times.append(time.perf_counter() - start)
    peak = peak_rss_mib()
    print(f'{args.config}: {args.shape[0]}x{args.shape[1]}, batch {args.batch}, '
          f'{torch.get_num_threads()} threads')
    print(f'  {statistics.median(times[1:]):.1f} s per training iteration, '
          f'peak memory +{(peak - base) / 1024:.2f} GiB over the built model')


if __name__ == '__main__':
    main()
