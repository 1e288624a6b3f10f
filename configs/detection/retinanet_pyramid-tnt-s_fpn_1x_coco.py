# RetinaNet with a PyramidTNT-S backbone, FPN, 1x: P3-P6 from the four stages' sentence maps
# (strides 8, 16, 32, 64), P7 by an extra conv on P6. Backbone and optimizer as
# mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py, without the stride-4 word map.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

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

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
