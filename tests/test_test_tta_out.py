"""tools/test.py --tta, --out and --compile on the toy detection and segmentation configs, and
mmdet's own analysis tool reading the --out file."""
import os
import os.path as osp
import pickle
import subprocess
import sys

import mmdet
import pytest
import torch._dynamo
import torch.nn as nn

from conftest import REPO_ROOT
from tnt_backbone.apis import compile_backbones

DET = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')
SEG = osp.join(REPO_ROOT, 'configs', 'segmentation', 'upernet_tnt-ti-p16_toy-ade20k-128x128.py')
BOXES_ONLY = ['model.roi_head.mask_head=None', 'model.roi_head.mask_roi_extractor=None',
              'test_evaluator.metric=bbox']


@pytest.fixture(scope='module')
def test_tool(load_tool):
    return load_tool('test.py').main


@pytest.fixture
def det_data(toy_coco, tmp_path, monkeypatch):
    """The toy COCO set (4 val images) at data/toy_coco, where the toy config reads it."""
    os.makedirs(tmp_path / 'data')
    os.symlink(toy_coco(2, 4, 128, seed=2), tmp_path / 'data' / 'toy_coco')
    monkeypatch.chdir(tmp_path)


def test_detection_tta_and_out_feed_mmdet_analysis_tools(test_tool, random_checkpoint,
                                                         det_data, tmp_path):
    ckpt = random_checkpoint(DET)
    metrics = test_tool([DET, ckpt, '--work-dir', 'work', '--tta', '--out', 'results.pkl',
                         '--cfg-options', *BOXES_ONLY])
    assert 'coco/bbox_mAP' in metrics
    with open('results.pkl', 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 4
    for r in results:  # merged over 3 scales x 2 flips, in the original image's pixels
        boxes = r['pred_instances']['bboxes']
        assert boxes.shape[1] == 4 and (boxes[:, 2] <= 128 + 1e-3).all()
    tool = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools',
                    'confusion_matrix.py')
    subprocess.run([sys.executable, tool, DET, 'results.pkl', 'cm', '--score-thr', '0.0'],
                   check=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT, MPLBACKEND='Agg'),
                   capture_output=True)
    assert osp.getsize(osp.join('cm', 'confusion_matrix.png')) > 0
    with pytest.raises(SystemExit, match='results.pkl exists'):
        test_tool([DET, ckpt, '--work-dir', 'work', '--out', 'results.pkl'])


def test_detection_tta_of_masks_says_what_to_do(test_tool, random_checkpoint, det_data):
    with pytest.raises(SystemExit, match='DetTTAModel merges boxes only.*mask_head=None'):
        test_tool([DET, random_checkpoint(DET), '--work-dir', 'work', '--tta'])


def test_segmentation_tta_and_out(test_tool, random_checkpoint, load_tool, tmp_path,
                                  monkeypatch):
    root = tmp_path / 'data' / 'toy_ade20k'
    load_tool('data/make_toy_ade20k.py').make_toy_ade20k(str(root), 1, 3, 64)
    monkeypatch.chdir(tmp_path)
    metrics = test_tool([SEG, random_checkpoint(SEG), '--work-dir', 'work', '--tta', '--out',
                         'seg.pkl'])
    assert 'mIoU' in metrics
    with open('seg.pkl', 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 3
    for r in results:  # averaged over scales and flips, at the original size
        h, w = r['ori_shape']
        assert tuple(r['pred_sem_seg']['data'].shape) == (1, h, w)


@pytest.mark.slow
def test_compiled_backbone_predicts_as_eager(test_tool, random_checkpoint, load_tool, tmp_path,
                                             monkeypatch):
    """--compile: the backbone runs as inductor code, with the eager model's logits."""
    root = tmp_path / 'data' / 'toy_ade20k'
    load_tool('data/make_toy_ade20k.py').make_toy_ade20k(str(root), 1, 2, 64)
    monkeypatch.chdir(tmp_path)
    ckpt = random_checkpoint(SEG)
    test_tool([SEG, ckpt, '--work-dir', 'work', '--out', 'eager.pkl'])
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    test_tool([SEG, ckpt, '--work-dir', 'work', '--out', 'compiled.pkl', '--compile'])
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 1
    with open('eager.pkl', 'rb') as f, open('compiled.pkl', 'rb') as g:
        eager, compiled = pickle.load(f), pickle.load(g)
    assert len(eager) == len(compiled) == 2
    for e, c in zip(eager, compiled):
        e, c = e['seg_logits']['data'], c['seg_logits']['data']
        assert (c - e).abs().max() <= 1e-4 * e.abs().max()


def test_compile_without_backbone_is_refused():
    with pytest.raises(SystemExit, match='Linear has no backbone'):
        compile_backbones(nn.Linear(2, 2))
