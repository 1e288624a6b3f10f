# UperNet, TNT-Ti/16 on the generated toy dataset (tools/data/make_toy_ade20k.py: 4 classes,
# ~128 px images): trains from scratch on a CPU in a few minutes (`make demo-seg`). Lighter heads
# than ADE20K's (64-channel UperNet, 32-channel auxiliary FCN); the backbone is the real TNT-Ti.
# mmseg's ADE20KDataset would remap any overridden class list onto its 150 ADE20K names, so the
# toy data is read with BaseSegDataset: the same layout and reduce_zero_label semantics.
_base_ = './upernet_tnt-ti-p16_8xb2-160k_ade20k-512x512.py'

crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(img_size=128, drop_path_rate=0., init_cfg=None),
    decode_head=dict(channels=64, num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(channels=32, num_classes=4, norm_cfg=norm_cfg),
    test_cfg=dict(_delete_=True, mode='whole'))

dataset_type = 'BaseSegDataset'
data_root = 'data/toy_ade20k'
metainfo = dict(
    classes=('ground', 'disc', 'box', 'stripes'),
    palette=[[140, 110, 80], [220, 40, 40], [40, 80, 230], [240, 220, 40]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(128, 128), ratio_range=(0.8, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
# --tta: mmseg's SegTTAModel (from mmseg's default_runtime) averages 3 scales x flip
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (0.75, 1.0, 1.25)],
        [dict(type='RandomFlip', prob=0., direction='horizontal'),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='LoadAnnotations', reduce_zero_label=True)],
        [dict(type='PackSegInputs')]])]
toy_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**toy_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**toy_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader

# No pretrained layers to protect: no layer-wise decay. From scratch in 500 steps, seeds 0/1
# gave mIoU 71.1/69.0 at lr 1e-3, 73.2/71.6 at 2e-3, 72.6/70.6 at 4e-3.
optim_wrapper = dict(optimizer=dict(lr=2e-3), paramwise_cfg=dict(layer_decay_rate=1.0))
max_iters = 500
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=50, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=20)
randomness = dict(seed=0)
