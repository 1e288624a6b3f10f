# UperNet with a TNT-B backbone: the TNT-S recipe with the base width (D = 640).
_base_ = './upernet_tnt-s-p16_8xb2-160k_ade20k-512x512.py'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-b-p16_in1k.pth')),
    neck=dict(in_channels=640),
    decode_head=dict(in_channels=[160, 320, 640, 640], channels=768),
    auxiliary_head=dict(in_channels=640))
