# UperNet with a TNT-Ti backbone: the TNT-S recipe with the tiny width (D = 192).
_base_ = './upernet_tnt-s-p16_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='tiny',
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-ti-p16_in1k.pth')),
    neck=dict(in_channels=192),
    decode_head=dict(in_channels=[48, 96, 192, 192]),
    auxiliary_head=dict(in_channels=192))
