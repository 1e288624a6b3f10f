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
    backbone=dict(
        _delete_=True,
        type='tnt_backbone.TNT',
        arch='small',
        out_indices=(5, 8, 11),
        window_size=14,  # windowed attention and checkpointing as the base's backbone
        global_attn_indices=(2, 5, 8, 11),
        with_cp=True,
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth')),
    neck=[
        dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=384, scales=(2, 1, 0.5)),
        dict(type='FPN', in_channels=[192, 384, 384], out_channels=256, start_level=0,
             add_extra_convs='on_input', num_outs=5),
    ])
optim_wrapper = {{_base_.tnt_optim_wrapper}}
