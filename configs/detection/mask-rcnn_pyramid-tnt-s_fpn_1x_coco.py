# Mask R-CNN with a PyramidTNT-S backbone, FPN, 1x schedule (12 epochs, 8 GPUs x 2 images).
# Five FPN inputs at strides 4-64: the stage-2 words (4x4 per stride-16 sentence, so natively
# at stride 4, 16 channels) and the four stages' sentence maps (strides 8, 16, 32, 64); the
# FPN's lateral convs bring all to 256, no extra level is needed for P6. The optimizer follows
# mmdet's Swin Mask R-CNN 1x (AdamW lr 1e-4, weight decay 0.05, none on norms, biases and
# position embeddings, 1000 warm-up iterations).
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

model = dict(
    # mean = std = 0.5 in [0, 1] units, the PyramidTNT ImageNet normalisation
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3),
    backbone=dict(
        _delete_=True,  # replaces the ResNet of mmdet's model base
        type='tnt_backbone.PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        word_out_indices=(1, ),
        drop_path_rate=0.1,
        norm_eval=True,  # the stem's BatchNorm would see only 2 images per GPU
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyramid-tnt-s_in1k.pth')),
    neck=dict(in_channels=[16, 128, 256, 512, 512]))

optim_wrapper = dict(
    _delete_=True,  # replaces the SGD of mmdet's schedule base
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))  # no per-block lr scaling, as Swin/PVT
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
