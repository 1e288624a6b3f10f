# Cascade Mask R-CNN with a TNT-S/16 backbone, FPN, 3x with multi-scale training: mmdet's
# standard ms-3x recipe (shorter side in [640, 800], the train set repeated 3 times over 12
# epochs). Backbone, normalisation and optimizer: configs/_base_/tnt-s-p16_detection.py.
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::common/ms-poly_3x_coco-instance.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = {{_base_.tnt_model}}
optim_wrapper = {{_base_.tnt_optim_wrapper}}
