# Shared TNT-S/16 settings of the detection configs. mmengine forbids two bases from defining
# the same key, so this file only defines new names; a config lists it last in `_base_` and
# picks them with `{{_base_.tnt_backbone}}` etc.
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

# The paper's detection setting with a plain backbone: the sentences of blocks 3/6/9/12
# (stride 16), each with its own LayerNorm, brought to strides 4/8/16/32 by the neck below.
# The 224-px position grid is resized to each input's grid at every forward; inputs are padded
# to a multiple of 16. At COCO sizes (~50x84 sentences) attention is windowed (14x14
# sentences, ViTDet style) except in blocks 6 and 12; every window also attends to the class
# token, which attends to every sentence. The word layers are recomputed in backward
# (with_cp='words'): they hold most activations for a small part of the compute. Mask R-CNN
# TNT-S then trains in 1.15x Swin-T's step time (its MAC ratio) at 0.78x its memory (README,
# "Detection cost", fixed seed).
tnt_backbone = dict(
    _delete_=True,  # replaces the ResNet of mmdet's model bases
    type='tnt_backbone.TNT',
    arch='small',
    out_indices=(2, 5, 8, 11),
    window_size=14,
    global_attn_indices=(5, 11),
    with_cp='words',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth'))

# ViTDet's simple feature pyramid: x4 (ConvT-LN-GELU-ConvT), x2 (ConvT), x1, x0.5 (max-pool),
# narrowed at the fine levels (D/4 = 96 channels at stride 4, D/2 = 192 at stride 8), where
# the maps are largest; LayerNorm over channels, independent of the batch size.
tnt_pyramid = dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=384,
                   scales=(4, 2, 1, 0.5))
tnt_pyramid_channels = [96, 192, 384, 384]
# Heads that start at stride 8 (RetinaNet, DINO): blocks 6/9/12 at x2, x1, x0.5, no stride-4
# level (whose parameters nothing would train).
tnt_backbone_from_stride8 = dict(tnt_backbone, out_indices=(5, 8, 11))
tnt_pyramid_from_stride8 = dict(tnt_pyramid, scales=(2, 1, 0.5))
tnt_pyramid_from_stride8_channels = [192, 384, 384]

# mean = std = 0.5 in [0, 1] units, the TNT ImageNet normalisation (merged into mmdet's
# DetDataPreprocessor, which converts BGR to RGB)
tnt_data_preprocessor = dict(mean=[127.5] * 3, std=[127.5] * 3)

# What the FPN-style configs set in `model`: normalisation, backbone, and the neck: the
# pyramid, then mmdet's FPN (mmengine builds a list of necks as nn.Sequential).
tnt_model = dict(
    data_preprocessor=tnt_data_preprocessor,
    backbone=tnt_backbone,
    neck=[tnt_pyramid, dict(type='FPN', in_channels=tnt_pyramid_channels, out_channels=256,
                            num_outs=5)])

# AdamW lr 1e-4 (total batch 16), weight decay 0.05, layer-wise lr decay 0.7 (ViTDet's rate
# for 12-block ViTs): the output norms, neck and heads train at the full lr, block 12 at 0.7x,
# each earlier block at 0.7x the next, the embeddings lowest; norms, biases, position
# embeddings and the class token get no weight decay.
tnt_optim_wrapper = dict(
    _delete_=True,  # replaces the SGD of mmdet's schedule bases
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.7))

# Test-time augmentation (tools/test.py --tta): mmdet's DetTTAModel merges the boxes of three
# scales x horizontal flip by NMS. DetTTAModel merges boxes only: models that predict masks
# test their boxes with --tta (see tools/test.py).
tta_model = dict(type='DetTTAModel',
                 tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=s, keep_ratio=True)
         for s in [(1333, 640), (1333, 800), (1333, 960)]],
        [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                               'scale_factor', 'flip', 'flip_direction'))]])]
