# TNT-S/16 fine-tuned at 384 px from a 224 px ImageNet checkpoint (83.1 % top-1 in the paper).
# The 14x14 sentence position grid of the checkpoint is resized bicubically to 24x24 on load;
# the checkpoint may be ours, timm's, the official release's or mmpretrain's. The recipe is
# DeiT's 384 px fine-tuning: 30 epochs at a constant lr of 5e-6 per 512 images, weight decay 1e-8.
_base_ = './tnt-s-p16_16xb64_in1k.py'

# A 224 px TNT-S classifier: the official/timm weights (as downloaded, or converted once by
# tools/model_converters/tnt2mm.py), or work_dirs/tnt-s-p16_16xb64_in1k/epoch_300.pth.
checkpoint = 'checkpoints/tnt-s-p16_in1k.pth'
model = dict(
    backbone=dict(img_size=384, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)),
    head=dict(init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', num_ops=2, magnitude=9, magnitude_std=0.5),
    dict(type='RandomErasing', prob=0.25),
    dict(type='PackClsInputs'),
]
test_pipeline = [  # crop ratio 1.0 at 384, as DeiT's 384 px models
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 384), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=5e-6, weight_decay=1e-8))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=30)]
train_cfg = dict(max_epochs=30)
auto_scale_lr = dict(base_batch_size=512)  # 16 GPUs x 32
