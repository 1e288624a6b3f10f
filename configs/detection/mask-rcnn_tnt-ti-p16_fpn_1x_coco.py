# Mask R-CNN, TNT-Ti/16 (D = 192), FPN, 1x: the TNT-S config with the tiny width.
_base_ = './mask-rcnn_tnt-s-p16_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-ti-p16_in1k.pth')),
    neck=[
        dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=192),
        dict(type='FPN', in_channels=[48, 96, 192, 192], out_channels=256, num_outs=5),
    ])
