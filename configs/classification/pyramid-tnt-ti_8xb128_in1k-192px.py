# PyramidTNT-Ti on ImageNet-1k, official recipe at 192 px (75.2 % top-1).
_base_ = './pyramid-tnt-s_8xb128_in1k-256px.py'

model = dict(backbone=dict(arch='tiny'), head=dict(in_channels=320))

crop = 192
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=crop, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', num_ops=2, magnitude=9, magnitude_std=0.5),
    dict(type='RandomErasing', prob=0.25),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, int(crop / 0.9)), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=crop),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
