"""Predictions on a user's images for every task: mmdet's ``DetInferencer``, mmseg's
``MMSegInferencer``, and :class:`ImageClassificationInferencer` (ours, in their style), picked
by the config's ``default_scope``; :func:`predict_images` writes what ``tools/infer.py`` promises.
"""
import glob
import json
import os
import os.path as osp

import mmcv
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.infer import BaseInferencer
from mmengine.registry import DATASETS, init_default_scope
from mmengine.utils import ProgressBar
from mmengine.visualization import Visualizer
from PIL import Image

from .apis import test_dataset_cfg

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def collect_images(inputs):
    """Image files from files, folders (not recursive) and glob patterns, in order, once each."""
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(osp.join(item, f) for f in os.listdir(item))
        elif osp.isfile(item):
            found = [item]
        else:
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                raise FileNotFoundError(f'no file, folder or glob match: {item}')
        files += [f for f in found if f.lower().endswith(IMAGE_SUFFIXES) and f not in files]
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {list(inputs)}')
    stems = {}
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        if stem in stems:
            raise ValueError(f'{stems[stem]} and {f} would write the same output files; '
                             f'predict them in separate runs')
        stems[stem] = f
    return files


def dataset_meta(cfg):
    """Class names and palette of the config's test dataset (its ``metainfo`` over the dataset
    class's ``METAINFO``): the checkpoint need not carry them."""
    ds = test_dataset_cfg(cfg)
    with DATASETS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        dataset_cls = registry.get(ds.type)
    meta = dict(getattr(dataset_cls, 'METAINFO', {}))
    meta.update(ds.get('metainfo') or {})
    return meta


class ImageClassificationInferencer(BaseInferencer):
    """Top-k predictions of a classifier of this project on image files.

    ``inferencer(paths)`` -> ``dict(predictions=[dict(labels, scores, classes)], visualization=
    [RGB array with the top-1 class written on it])``, as mmdet's and mmseg's inferencers.
    """
    visualize_kwargs = {'return_vis'}
    postprocess_kwargs = {'topk'}

    def __init__(self, model, weights=None, device=None, scope='tnt_backbone', classes=None,
                 show_progress=True):
        init_default_scope(scope)
        super().__init__(model=model, weights=weights, device=device, scope=scope,
                         show_progress=show_progress)
        num_classes = self.model.head.num_classes
        self.classes = list(classes or [f'class_{i}' for i in range(num_classes)])
        if len(self.classes) != num_classes:
            raise ValueError(f'{len(self.classes)} class names for a {num_classes}-class head')

    def _init_pipeline(self, cfg):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
        return lambda path: pipeline(dict(img_path=path))

    def _init_visualizer(self, cfg):
        return Visualizer(name=f'tnt_classification_inferencer_{id(self)}')

    def visualize(self, inputs, preds, return_vis=False, **kwargs):
        if not return_vis:
            return None
        out = []
        for path, pred in zip(inputs, preds):
            img = mmcv.imread(path, channel_order='rgb')
            label = int(pred.pred_label)
            self.visualizer.set_image(img)
            self.visualizer.draw_texts(
                f'{self.classes[label]} {float(pred.pred_score[label]):.2f}',
                np.array([2, 2]), colors='white', font_sizes=max(8, img.shape[0] // 12),
                bboxes=dict(facecolor='black', alpha=0.6))
            out.append(self.visualizer.get_image())
        return out

    def postprocess(self, preds, visualization, return_datasamples=False, topk=5, **kwargs):
        if return_datasamples:
            return dict(predictions=preds, visualization=visualization)
        predictions = []
        for pred in preds:
            scores, labels = pred.pred_score.topk(min(topk, len(self.classes)))
            predictions.append(dict(labels=labels.tolist(), scores=scores.tolist(),
                                    classes=[self.classes[i] for i in labels.tolist()]))
        return dict(predictions=predictions, visualization=visualization)


def build_inferencer(cfg, checkpoint, device):
    """The inferencer of the config's task (``default_scope``), with the config's class names."""
    meta = dataset_meta(cfg)
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device,
                                   show_progress=False)
        if meta.get('classes'):  # else DetInferencer's COCO names
            inferencer.model.dataset_meta = meta
            inferencer.visualizer.dataset_meta = meta
        return inferencer
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device)
        inferencer.show_progress = False  # predict_images shows one bar over all images
        if meta.get('classes'):  # else MMSegInferencer's Cityscapes names
            palette = meta.get('palette') or np.random.default_rng(0).integers(
                0, 256, (len(meta['classes']), 3)).tolist()
            inferencer.model.dataset_meta = dict(classes=meta['classes'], palette=palette)
        return inferencer
    if scope == 'tnt_backbone':
        return ImageClassificationInferencer(cfg, checkpoint, device, classes=meta.get('classes'),
                                             show_progress=False)
    raise ValueError(f"default_scope {scope!r}: expected 'mmdet', 'mmseg' or 'tnt_backbone'")


def _write_json(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)


def predict_images(config, checkpoint, inputs, out_dir, score_thr=0.3, device=None):
    """Runs the config's model on every image of ``inputs`` (files, folders, globs) and writes
    ``out_dir/vis/<name>.png`` (predictions drawn) and ``out_dir/preds/<name>.json``:

    - detection: mmdet's ``DetInferencer`` file (``labels``, ``scores``, ``bboxes`` in pixels
      of the input image, RLE ``masks`` for instance segmentation), kept to ``score_thr``;
    - segmentation: ``preds/<name>.png`` (class index per pixel) and the JSON naming it and
      the classes;
    - classification: top-5 ``labels``, ``scores``, ``classes``.

    Returns the list of image files.
    """
    files = collect_images(inputs)
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    inferencer = build_inferencer(cfg, checkpoint, device)
    scope = cfg.get('default_scope')
    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
    progress = ProgressBar(len(files))
    for path in files:
        stem = osp.splitext(osp.basename(path))[0]
        pred_json = osp.join(out_dir, 'preds', f'{stem}.json')
        if scope == 'mmdet':
            result = inferencer(path, out_dir=out_dir, return_vis=True, no_save_vis=True,
                                no_save_pred=False, pred_score_thr=score_thr)
            with open(pred_json) as f:  # written by DetInferencer, every score
                pred = json.load(f)
            keep = [i for i, s in enumerate(pred['scores']) if s >= score_thr]
            _write_json(pred_json, {k: [v[i] for i in keep] if isinstance(v, list) else v
                                    for k, v in pred.items()})
        elif scope == 'mmseg':
            result = inferencer(path, return_vis=True)
            label_png = f'{stem}.png'
            Image.fromarray(result['predictions'].astype(np.uint8)).save(
                osp.join(out_dir, 'preds', label_png))
            _write_json(pred_json, dict(label_map=label_png,
                                        classes=list(inferencer.model.dataset_meta[
                                            'classes'])))
        else:
            result = inferencer(path, return_vis=True)
            _write_json(pred_json, result['predictions'][0])
        vis = result['visualization']
        vis = vis[0] if isinstance(vis, list) else vis
        mmcv.imwrite(vis[..., ::-1], osp.join(out_dir, 'vis', f'{stem}.png'))  # RGB -> BGR
        progress.update()
    return files
