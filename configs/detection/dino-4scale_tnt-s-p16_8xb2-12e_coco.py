# DINO (4 feature scales) with a TNT-S/16 backbone, 12 epochs (8 GPUs x 2 images). The scales
# are those of mmdet's DINO-4scale: strides 8/16/32 from the pyramid (blocks 6/9/12 at x2, x1,
# x0.5), and stride 64 from mmdet's ChannelMapper (a strided conv on the last), as for ResNet.
# mmdet's DINO recipe otherwise: AdamW lr 1e-4, weight decay 1e-4, gradient clipping at 0.1;
# the backbone's lr x0.1 of that recipe becomes layer-wise lr decay 0.7 (see
# configs/_base_/tnt-s-p16_detection.py).
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = dict(
    data_preprocessor={{_base_.tnt_data_preprocessor}},
    backbone={{_base_.tnt_backbone_from_stride8}},
    neck=[
        {{_base_.tnt_pyramid_from_stride8}},
        dict(type='ChannelMapper', in_channels={{_base_.tnt_pyramid_from_stride8_channels}},
             kernel_size=1, out_channels=256, act_cfg=None,
             norm_cfg=dict(type='GN', num_groups=32), num_outs=4),
    ])
optim_wrapper = dict(
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.7))
