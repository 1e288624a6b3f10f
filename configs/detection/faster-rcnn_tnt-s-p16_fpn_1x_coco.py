# Faster R-CNN with a TNT-S/16 backbone, FPN, 1x: the setting of the TNT paper's appendix
# (41.5 box AP on COCO val2017). Backbone, normalisation and optimizer:
# configs/_base_/tnt-s-p16_detection.py.
_base_ = [
    'mmdet::_base_/models/faster-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = {{_base_.tnt_model}}
optim_wrapper = {{_base_.tnt_optim_wrapper}}
