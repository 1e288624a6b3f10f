"""tools/infer.py on a few generated images for each task: files written, JSON that parses and
describes the image (boxes inside it, a label map of its size, top-5 of the head's classes)."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT

CONFIGS = osp.join(REPO_ROOT, 'configs')
DET = osp.join(CONFIGS, 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')
SEG = osp.join(CONFIGS, 'segmentation', 'upernet_tnt-ti-p16_toy-ade20k-128x128.py')
CLS = osp.join(CONFIGS, 'classification', 'tnt-ti-p16_toy.py')


@pytest.fixture(scope='module')
def infer(load_tool):
    return load_tool('infer.py').main


def images(folder, sizes):
    """Random images of the given (h, w) sizes (not multiples of 16) in ``folder``."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f'img{i}.jpg'), rng.integers(0, 255, (h, w, 3), np.uint8))
    return folder


def outputs(out, name):
    assert osp.isfile(out / 'vis' / f'{name}.png')
    with open(out / 'preds' / f'{name}.json') as f:
        return json.load(f)


def test_detection_writes_boxes_inside_the_image(infer, random_checkpoint, tmp_path):
    sizes = [(120, 136), (100, 90)]
    folder = images(tmp_path / 'in', sizes)
    out = tmp_path / 'out'
    infer([DET, random_checkpoint(DET), str(folder), '--out-dir', str(out), '--score-thr',
           '0.05', '--device', 'cpu'])
    total = 0
    for i, (h, w) in enumerate(sizes):
        pred = outputs(out, f'img{i}')
        assert cv2.imread(str(out / 'vis' / f'img{i}.png')).shape == (h, w, 3)
        n = len(pred['scores'])
        total += n
        assert len(pred['labels']) == len(pred['bboxes']) == len(pred['masks']) == n
        assert all(s >= 0.05 for s in pred['scores'])
        assert all(0 <= label < 3 for label in pred['labels'])
        for x1, y1, x2, y2 in pred['bboxes']:
            assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
        for m in pred['masks']:
            assert m['size'] == [h, w]  # RLE of the input image's size
    assert total > 0  # random weights still score some boxes above 0.05


def test_segmentation_writes_a_label_map_and_classes(infer, random_checkpoint, tmp_path):
    sizes = [(117, 139), (128, 128)]
    folder = images(tmp_path / 'in', sizes)
    out = tmp_path / 'out'
    infer([SEG, random_checkpoint(SEG), str(folder / 'img*.jpg'), '--out-dir', str(out)])
    for i, (h, w) in enumerate(sizes):
        pred = outputs(out, f'img{i}')
        assert pred['classes'] == ['ground', 'disc', 'box', 'stripes']  # from the config
        labels = np.array(Image.open(out / 'preds' / pred['label_map']))
        assert labels.shape == (h, w) and labels.max() < 4


def test_classification_writes_top5(infer, random_checkpoint, tmp_path):
    folder = images(tmp_path / 'in', [(80, 80), (70, 95)])
    out = tmp_path / 'out'
    infer([CLS, random_checkpoint(CLS), str(folder / 'img0.jpg'), str(folder / 'img1.jpg'),
           '--out-dir', str(out)])
    for i in range(2):
        pred = outputs(out, f'img{i}')
        assert len(pred['labels']) == 5 and sorted(pred['labels']) == list(range(5))
        assert pred['scores'] == sorted(pred['scores'], reverse=True)
        assert abs(sum(pred['scores']) - 1) < 1e-4  # all 5 classes of the toy head
        assert pred['classes'] == [f'class_{k}' for k in pred['labels']]


def test_bad_inputs_are_errors(infer, random_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match='no file, folder or glob match'):
        infer([CLS, random_checkpoint(CLS), str(tmp_path / 'nothing*.jpg')])
    a, b = tmp_path / 'a', tmp_path / 'b'
    images(a, [(64, 64)])
    images(b, [(64, 64)])
    with pytest.raises(ValueError, match='would write the same output files'):
        infer([CLS, random_checkpoint(CLS), str(a), str(b)])


UPSTREAM_INFERENCERS = """
import sys
from mmdet.apis import DetInferencer
from mmseg.apis import MMSegInferencer
assert 'tnt_backbone' not in sys.modules
det = DetInferencer(model={det!r}, weights={det_ckpt!r}, device='cpu', show_progress=False)
assert 'tnt_backbone' in sys.modules  # through the config's custom_imports
out = det({img!r}, pred_score_thr=0.0)['predictions'][0]
assert len(out['bboxes']) == len(out['scores']) > 0
seg = MMSegInferencer(model={seg!r}, weights={seg_ckpt!r}, device='cpu')
assert seg({img!r})['predictions'].shape == (100, 90)
print('ok')
"""


def test_upstream_inferencers_take_our_configs_in_a_fresh_process(random_checkpoint, tmp_path):
    """What a user of mmdet/mmseg writes, with nothing of ours imported first: the configs'
    custom_imports register the TNT backbone and our checkpoint loader, under mmdet's and
    mmseg's default scopes."""
    img = images(tmp_path / 'in', [(100, 90)]) / 'img0.jpg'
    script = UPSTREAM_INFERENCERS.format(det=DET, det_ckpt=random_checkpoint(DET), img=str(img),
                                         seg=SEG, seg_ckpt=random_checkpoint(SEG))
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=REPO_ROOT), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith('ok')
