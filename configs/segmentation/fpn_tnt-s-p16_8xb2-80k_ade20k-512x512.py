# Semantic FPN with a TNT-S backbone on ADE20K: 8 GPUs x 2 images, 80k iterations, 512x512.
# Backbone, optimizer and inference as in the UperNet TNT-S config.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

crop_size = (512, 512)
data_preprocessor = dict(size=crop_size, mean=[127.5] * 3, std=[127.5] * 3)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='tnt_backbone.TNT',
        arch='small',
        img_size=512,
        out_indices=(2, 5, 8, 11),
        out_type='pyramid',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth')),
    neck=dict(in_channels=[384] * 4),
    decode_head=dict(num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=1500, end=80000),
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
