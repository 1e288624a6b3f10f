# Mask R-CNN with a TNT-S/16 backbone, FPN, 1x schedule (12 epochs, 8 GPUs x 2 images).
# Backbone, normalisation and optimizer: configs/_base_/tnt-s-p16_detection.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = {{_base_.tnt_model}}
optim_wrapper = {{_base_.tnt_optim_wrapper}}
