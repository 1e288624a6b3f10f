# Mask R-CNN, TNT-Ti/16, FPN on the generated toy shapes (tools/data/make_toy_coco.py, 128 px):
# trained from scratch on a CPU in minutes by `make demo` (3 epochs of 300 images, batch 4).
# To start from a TNT-Ti checkpoint instead (ImageNet, or one of configs/classification):
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained
#                 model.backbone.init_cfg.checkpoint=PATH
_base_ = './mask-rcnn_tnt-ti-p16_fpn_1x_coco.py'

data_root = 'data/toy_coco/'
metainfo = dict(classes=('circle', 'square', 'triangle'),
                palette=[(220, 20, 60), (0, 160, 60), (30, 60, 220)])
img_scale = (128, 128)
num_classes = 3

# Lighter heads than COCO's (128-channel FPN, 256-wide box head, 2-conv mask head, 64 RoIs per
# image) so that a CPU trains it in minutes; the backbone is the real TNT-Ti. From scratch, the
# stride-4 level made of the visual words (local 4x4-pixel features, here of block 3) learns
# boxes and masks far faster than one upsampled from the stride-16 sentences; the other levels
# come from blocks 6/9/12, all levels D = 192 wide. An 8x8 sentence grid needs neither windows
# nor activation checkpointing.
model = dict(
    backbone=dict(drop_path_rate=0., out_indices=(5, 8, 11), word_map_index=2, window_size=0,
                  with_cp=False, init_cfg=None),
    neck=[
        dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=192, word_channels=12,
             out_channels=[192] * 4),
        dict(type='FPN', in_channels=[192] * 4, out_channels=128, num_outs=5),
    ],
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(in_channels=128, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=128),
        mask_head=dict(num_convs=2, in_channels=128, conv_out_channels=128,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=s, keep_ratio=True) for s in [(96, 96), img_scale, (160, 160)]],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo,
                 ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

max_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# AdamW 8e-4 (the TNT configs' 1e-4 is for fine-tuning ImageNet weights): from scratch in 225
# steps, seeds 0/1 gave bbox mAP 0.50/0.51 at 2e-4, 0.62/0.66 at 4e-4, 0.71/0.69 at 8e-4,
# 0.69/0.69 at 1.6e-3. No layer-wise decay, which protects pretrained blocks; clipping keeps
# the first steps from scratch stable.
optim_wrapper = dict(optimizer=dict(lr=8e-4), clip_grad=dict(max_norm=1.0),
                     paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='CosineAnnealingLR', begin=0, end=max_epochs, by_epoch=True, eta_min=1e-5),
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=1, max_keep_ckpts=1))  # every epoch: an interrupted run resumes
log_processor = dict(window_size=10)
randomness = dict(seed=0)
