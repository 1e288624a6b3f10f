# UperNet with a TNT-S backbone on ADE20K: 8 GPUs x 2 images, 160k iterations, 512x512 crops,
# auxiliary FCN head on the stride-16 level (the neck's third), sliding-window inference.
# Backbone (224 position grid resized to 32x32 at load), optimizer and warm-up:
# configs/_base_/tnt-s-p16_ade20k.py.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py',
    '../_base_/tnt-s-p16_ade20k.py'
]
model = dict(
    data_preprocessor={{_base_.tnt_data_preprocessor}},
    pretrained=None,
    backbone={{_base_.tnt_backbone}},
    neck={{_base_.tnt_neck}},
    decode_head=dict(in_channels={{_base_.tnt_neck_channels}}, channels=512, num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
    test_cfg={{_base_.tnt_test_cfg}})
optim_wrapper = {{_base_.tnt_optim_wrapper}}
param_scheduler = [
    {{_base_.tnt_warmup}},
    dict(type='PolyLR', eta_min=0., power=1., by_epoch=False, begin=1500, end=160000),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
