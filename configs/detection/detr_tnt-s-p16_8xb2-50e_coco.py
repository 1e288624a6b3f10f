# DETR with a TNT-S/16 backbone, 50 epochs (8 GPUs x 2 images): the TNT paper's DETR
# experiment (38.2 box AP on COCO val2017). The transformer reads the last block's sentences
# at stride 16 (like DETR-DC5, where ResNet gives stride 32). mmdet's DETR recipe otherwise:
# AdamW lr 1e-4, weight decay 1e-4, gradient clipping at 0.1, lr x0.1 after 2/3 of training;
# the backbone's lr x0.1 of that recipe becomes layer-wise lr decay 0.7 (see
# configs/_base_/tnt-s-p16_detection.py).
_base_ = [
    'mmdet::detr/detr_r50_8xb2-150e_coco.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = dict(
    data_preprocessor={{_base_.tnt_data_preprocessor}},
    backbone=dict(
        _delete_=True,
        type='tnt_backbone.TNT',
        arch='small',
        out_indices=(11, ),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth')),
    neck=dict(in_channels=[384]))
optim_wrapper = dict(
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.7))

max_epochs = 50
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[33],
         gamma=0.1)
]
