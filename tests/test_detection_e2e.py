"""End to end: the toy Mask R-CNN TNT-Ti learns the generated shapes (a short `make demo`).

tools/train.py trains the toy config from scratch on a small generated set; the COCO metrics
(pycocotools, on the val split) must be far above chance, which is ~0 mAP for a model that has
not learnt where the shapes are, and the training loss must fall.
"""
import os
import os.path as osp

import numpy as np
import pytest

from conftest import REPO_ROOT

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')
EPOCHS = 2  # of 120 images, batch 4: 60 iterations


@pytest.mark.slow
def test_toy_mask_rcnn_learns(toy_coco, load_tool, tmp_path, monkeypatch):
    os.makedirs(tmp_path / 'data')
    os.symlink(toy_coco(120, 20, 128, seed=1), tmp_path / 'data' / 'toy_coco')
    monkeypatch.chdir(tmp_path)  # the config reads data/toy_coco
    runner = load_tool('train.py').main([
        TOY_CONFIG, '--work-dir', 'work', '--cfg-options', f'train_cfg.max_epochs={EPOCHS}',
        f'train_cfg.val_interval={EPOCHS}', f'param_scheduler.1.end={EPOCHS}',
        'param_scheduler.0.end=20'])

    hub = runner.message_hub
    losses = hub.get_scalar('train/loss').data[0]
    assert len(losses) == EPOCHS * 30 and np.isfinite(losses).all()
    assert losses[-10:].mean() < 0.5 * losses[:10].mean(), losses
    bbox_map = hub.get_scalar('val/coco/bbox_mAP').current()
    segm_map = hub.get_scalar('val/coco/segm_mAP').current()
    assert bbox_map > 0.05 and segm_map > 0.05, (bbox_map, segm_map)
    assert hub.get_scalar('val/coco/bbox_mAP_50').current() > 0.2
    assert osp.isfile(osp.join('work', f'epoch_{EPOCHS}.pth'))
