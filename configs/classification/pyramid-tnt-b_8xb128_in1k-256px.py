# PyramidTNT-B on ImageNet-1k, official recipe at 256 px (84.1 % top-1).
_base_ = './pyramid-tnt-s_8xb128_in1k-256px.py'

model = dict(backbone=dict(arch='base'), head=dict(in_channels=1024))
