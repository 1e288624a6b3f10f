"""Predictions of a trained model on your own images, for every config of this project.

    python tools/infer.py CONFIG CHECKPOINT INPUTS... [--out-dir DIR] [--score-thr T]
                          [--device cpu|cuda]

INPUTS are image files, folders or glob patterns (quote them: 'photos/*.jpg'). The config's
``default_scope`` picks mmdet's ``DetInferencer``, mmseg's ``MMSegInferencer`` or our
classification inferencer. Writes ``DIR/vis/<name>.png`` (predictions drawn) and
``DIR/preds/<name>.json``: boxes, labels, scores (and RLE masks) for detection; a class-index
PNG ``DIR/preds/<name>.png`` and the class names for segmentation; top-5 labels, scores and
class names for classification.
"""
import argparse

from tnt_backbone.inference import predict_images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file or http(s) URL')
    parser.add_argument('inputs', nargs='+', help='image files, folders or glob patterns')
    parser.add_argument('--out-dir', default='outputs', help='where vis/ and preds/ go')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: keep (and draw) boxes scoring at least this')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default=None,
                        help='defaults to cuda when available')
    args = parser.parse_args(argv)
    files = predict_images(args.config, args.checkpoint, args.inputs, args.out_dir,
                           score_thr=args.score_thr, device=args.device)
    print(f'\n{len(files)} images -> {args.out_dir}/vis, {args.out_dir}/preds')


if __name__ == '__main__':
    main()
