# RetinaNet with a TNT-S/16 backbone, FPN (P3-P5 from the stride 8/16/32 levels, P6-P7 extra),
# 1x. Backbone, normalisation and optimizer: configs/_base_/tnt-s-p16_detection.py.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = {{_base_.tnt_model}}
optim_wrapper = {{_base_.tnt_optim_wrapper}}
# The FPN starts at stride 8, so the backbone's stride-4 level (its x4 upsampler and first
# output norm) gets no gradient; distributed training must be told.
find_unused_parameters = True
