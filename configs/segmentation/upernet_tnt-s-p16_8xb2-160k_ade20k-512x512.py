# UperNet with a TNT-S backbone on ADE20K: 8 GPUs x 2 images, 160k iterations, 512x512 crops.
# The ImageNet checkpoint's 14x14 position grid (img_size=224) is resized once, at load, to the
# 32x32 grid of a 512 crop (img_size=512) and fine-tuned there, as mmseg does for ViT/BEiT.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
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
    decode_head=dict(in_channels=[384] * 4, channels=512, num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=1500, end=160000),
]

# 8 GPUs x 2 images = 16 images per iteration
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
