# TNT-S/16 on ImageNet-1k with the DeiT recipe of the TNT paper (81.5 % top-1): 300 epochs,
# AdamW lr 1e-3 at batch 1024 (16 GPUs x 64), Mixup/CutMix, RandAugment, random erasing,
# repeated augmentation. The Ti and B configs inherit everything but the width.
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)
default_scope = 'tnt_backbone'

# ------------------------------------------------------------------------------------- model
model = dict(
    type='ImageClassifier',
    backbone=dict(type='TNT', arch='small', img_size=224, out_type='cls_token', out_indices=(-1, ),
                  drop_path_rate=0.1),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=384, label_smoothing=0.1),
    # mean = std = 0.5 in [0, 1] units; cv2 loads BGR, the released TNT weights take RGB
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

# -------------------------------------------------------------------------------------- data
data_root = 'data/imagenet'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', num_ops=2, magnitude=9, magnitude_std=0.5),
    dict(type='RandomErasing', prob=0.25),
    dict(type='PackClsInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    # keep_ratio fits the image inside (long, short) = (10000, 248): the short side becomes 248
    dict(type='Resize', scale=(10000, 248), keep_ratio=True, interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackClsInputs'),
]
train_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='RepeatAugSampler', shuffle=True, num_repeats=3),
    dataset=dict(type='ImageNet', data_root=data_root, ann_file='meta/train.txt',
                 data_prefix='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='ImageNet', data_root=data_root, ann_file='meta/val.txt',
                 data_prefix='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

# ---------------------------------------------------------------------------------- schedule
# layer_decay_rate 1.0: no per-block lr scaling, only no weight decay on norms, biases,
# position embeddings and the class token.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8),
    constructor='LayerDecayOptimWrapperConstructor', paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=300,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr is for 1024 images per step; `tools/train.py --auto-scale-lr` rescales it linearly
auto_scale_lr = dict(base_batch_size=1024)

# ----------------------------------------------------------------------------------- runtime
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=100),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
               dist_cfg=dict(backend='nccl'))
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
