# UperNet with a PyramidTNT-S backbone on ADE20K: 8 GPUs x 2 images, 160k iterations, 512x512
# crops, sliding-window inference. The head fuses five levels: the stage-2 words (natively at
# stride 4, 16 channels) and the four stages' sentence maps (strides 8-64); the auxiliary FCN
# head reads the stride-16 map. The 256-px position embedding and attention biases are resized
# once, at load, to the 512 grid (img_size=512) and fine-tuned there. Optimizer as mmseg's Swin
# UperNet: AdamW lr 6e-5, weight decay 0.01 (none on norms, biases, position embeddings),
# 1500 warm-up iterations, then poly decay.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(size=(512, 512), mean=[127.5] * 3, std=[127.5] * 3),
    pretrained=None,
    backbone=dict(
        _delete_=True,  # replaces the ResNet of mmseg's model base
        type='tnt_backbone.PyramidTNT',
        arch='small',
        img_size=512,
        out_indices=(0, 1, 2, 3),
        word_out_indices=(1, ),
        drop_path_rate=0.1,
        norm_eval=True,  # the stem's BatchNorm would see only 2 images per GPU
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyramid-tnt-s_in1k.pth')),
    decode_head=dict(in_channels=[16, 128, 256, 512, 512], in_index=[0, 1, 2, 3, 4],
                     channels=512, num_classes=150),
    auxiliary_head=dict(in_channels=256, in_index=2, num_classes=150),
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,  # replaces the SGD of mmseg's schedule base
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
