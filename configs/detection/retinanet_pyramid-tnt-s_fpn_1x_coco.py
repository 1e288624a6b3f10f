# RetinaNet with a PyramidTNT-S backbone, FPN, 1x: P3-P6 from the four stages' sentence maps
# (strides 8, 16, 32, 64), P7 by an extra conv on P6. Backbone as
# mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py without the stride-4 word map; optimizer and schedule:
# configs/_base_/pyramid-tnt_coco-1x.py.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    '../_base_/pyramid-tnt_coco-1x.py',
]

model = dict(
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3),
    backbone=dict(
        _delete_=True,
        type='tnt_backbone.PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        drop_path_rate=0.1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyramid-tnt-s_in1k.pth')),
    neck=dict(in_channels=[128, 256, 512, 512], start_level=0, add_extra_convs='on_output'))
