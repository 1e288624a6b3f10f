# PyramidTNT-M on ImageNet-1k, official recipe at 256 px (83.5 % top-1).
_base_ = './pyramid-tnt-s_8xb128_in1k-256px.py'

model = dict(backbone=dict(arch='medium'), head=dict(in_channels=768))
