# RetinaNet with a TNT-S/16 backbone, FPN, 1x: P3-P5 from the pyramid's stride 8/16/32 levels
# (blocks 6/9/12), P6-P7 extra convolutions, as mmdet's RetinaNet. The pyramid builds no
# stride-4 level, so every parameter trains. Backbone, normalisation and optimizer:
# configs/_base_/tnt-s-p16_detection.py.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = dict(
    data_preprocessor={{_base_.tnt_data_preprocessor}},
    backbone={{_base_.tnt_backbone_from_stride8}},
    neck=[
        {{_base_.tnt_pyramid_from_stride8}},
        dict(type='FPN', in_channels={{_base_.tnt_pyramid_from_stride8_channels}},
             out_channels=256, start_level=0, add_extra_convs='on_input', num_outs=5),
    ])
optim_wrapper = {{_base_.tnt_optim_wrapper}}
