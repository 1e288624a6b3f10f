# TNT-Ti/16 on the generated toy ImageNet (tools/data/make_toy_imagenet.py: 5 classes of 80 px
# images) at 64 px, for CPU: a few minutes on 2 cores (`make demo-cls`). Keeps the model and the
# optimizer of the ImageNet recipe. With 320 images and minutes, lighter augmentation learns
# faster: crops that keep most of the object, no Mixup/CutMix, no RandAugment/erasing, and no
# repeated augmentation (one process: the copies would share a batch).
_base_ = './tnt-ti-p16_16xb64_in1k.py'

max_epochs = 10
model = dict(backbone=dict(img_size=64, drop_path_rate=0.), head=dict(num_classes=5),
             train_cfg=dict(augments=None))

data_root = 'data/toy_imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.64, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(10000, 72), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=2,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=50, num_workers=2,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(max_keep_ckpts=2, save_best=None))
randomness = dict(seed=0)
