# Trans2Seg with a TNT-S encoder on ADE20K (the TNT paper's segmentation setting: 43.6 mIoU,
# single scale): 8 GPUs x 2 images, 40k iterations, 512x512 crops. 150 class queries attend to
# the last block's stride-16 map; their attention maps are decoded into masks by a small CNN.
_base_ = [
    'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_40k.py', '../_base_/tnt-s-p16_ade20k.py'
]

crop_size = (512, 512)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    size=crop_size,
    mean=[127.5] * 3,
    std=[127.5] * 3,
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='tnt_backbone.TNT',
        arch='small',
        img_size=512,
        out_indices=(11, ),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth')),
    decode_head=dict(
        type='tnt_backbone.Trans2SegHead',
        in_channels=384,
        in_index=0,
        channels=256,
        num_layers=4,
        num_heads=8,
        mlp_ratio=3.,
        hidden_channels=64,
        num_convs=2,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg={{_base_.tnt_test_cfg}})

optim_wrapper = {{_base_.tnt_optim_wrapper}}
param_scheduler = [
    {{_base_.tnt_warmup}},
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=1500, end=40000),
]

train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
