# PyramidTNT-S on ImageNet-1k with the official recipe (82.0 % top-1): 300 epochs, 20 warm-up
# epochs, AdamW lr 1e-3 at batch 1024 (8 GPUs x 128), model EMA 0.99996, repeated augmentation,
# mean = std = 0.5, 256 px. Everything else (Mixup/CutMix, RandAugment, random erasing, label
# smoothing, dataset, runtime) is the TNT DeiT recipe, which the official script shares.
_base_ = './tnt-s-p16_16xb64_in1k.py'

model = dict(
    backbone=dict(_delete_=True, type='PyramidTNT', arch='small', out_indices=(3, ),
                  out_type='avg_featmap', drop_path_rate=0.1),
    head=dict(in_channels=512))

crop = 256
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', num_ops=2, magnitude=9, magnitude_std=0.5),
    dict(type='RandomErasing', prob=0.25),
    dict(type='PackClsInputs'),
]
test_pipeline = [  # the official crop_pct 0.9: short side crop / 0.9, then the center crop
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, int(crop / 0.9)), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=20,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300,
         convert_to_iter_based=True),
]
# timm's ModelEmaV2 decay 0.99996 per step, buffers included; mmengine's momentum is the weight
# of the new value: 1 - 0.99996
custom_hooks = [dict(type='EMAHook', ema_type='ExponentialMovingAverage', momentum=4e-5,
                     update_buffers=True, priority='ABOVE_NORMAL')]
