# DINO (4 feature scales) with a TNT-S/16 backbone, 12 epochs (8 GPUs x 2 images). The four
# scales are TNT's pyramid (strides 4, 8, 16, 32; ResNet's DINO-4scale uses 8 to 64), so the
# encoder sees a stride-4 level as in mmdet's DINO-5scale. mmdet's DINO recipe otherwise:
# AdamW lr 1e-4, weight decay 1e-4, gradient clipping at 0.1; the backbone's lr x0.1 of that
# recipe becomes layer-wise lr decay 0.7 (see configs/_base_/tnt-s-p16_detection.py).
_base_ = [
    'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py',
    '../_base_/tnt-s-p16_detection.py',
]
model = {{_base_.tnt_model}}
optim_wrapper = dict(
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, layer_decay_rate=0.7))
