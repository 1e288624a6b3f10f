# Mask R-CNN, TNT-B/16 (D = 640), FPN, 1x: the TNT-S config with the base width.
_base_ = './mask-rcnn_tnt-s-p16_fpn_1x_coco.py'

model = dict(
    backbone=dict(
        arch='base',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-b-p16_in1k.pth')),
    neck=[
        dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=640),
        dict(type='FPN', in_channels=[160, 320, 640, 640], out_channels=256, num_outs=5),
    ])
