# TNT-B/16 on ImageNet-1k, DeiT recipe (82.9 % top-1 in the paper).
_base_ = './tnt-s-p16_16xb64_in1k.py'

model = dict(backbone=dict(arch='base'), head=dict(in_channels=640))
