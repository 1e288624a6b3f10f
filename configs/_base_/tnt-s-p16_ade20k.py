# Shared TNT-S/16 settings of the ADE20K configs (512x512 crops, 8 GPUs x 2 images). Like
# tnt-s-p16_detection.py it only defines new names (mmengine forbids two bases defining the
# same key); a config lists it last in `_base_` and picks them with `{{_base_.tnt_backbone}}` etc.
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

# The ImageNet checkpoint's 14x14 position grid (224 px) is resized once, at load, to the 32x32
# grid of a 512 crop (img_size=512) and fine-tuned there, as mmseg does for ViT/BEiT. The
# sentences of blocks 3/6/9/12 (stride 16) go to the neck below. The word layers are recomputed
# in backward (with_cp='words'), as in detection: UperNet TNT-S then trains at 0.81x Swin-T's
# memory (0.93x without) in about its step time (README, "Segmentation cost").
tnt_data_preprocessor = dict(size=(512, 512), mean=[127.5] * 3, std=[127.5] * 3)
tnt_backbone = dict(
    _delete_=True,  # replaces the ResNet of mmseg's model bases
    type='tnt_backbone.TNT',
    arch='small',
    img_size=512,
    out_indices=(2, 5, 8, 11),
    with_cp='words',
    drop_path_rate=0.1,
    init_cfg=dict(type='Pretrained', checkpoint='checkpoints/tnt-s-p16_in1k.pth'))
# The pyramid at strides 4/8/16/32 (x4, x2, x1, x0.5; ViTDet's widths D/4, D/2, D, D) with
# LayerNorm over channels: mmseg's Feature2Pyramid with batch-independent norms.
tnt_neck = dict(type='tnt_backbone.SimpleFeaturePyramid', in_channels=384)
tnt_neck_channels = [96, 192, 384, 384]
tnt_test_cfg = dict(mode='slide', crop_size=(512, 512), stride=(341, 341))

# AdamW lr 1e-4, weight decay 0.05 (none on norms, biases, position embeddings, class token),
# layer-wise lr decay 0.65 (BEiT's ADE20K rate), 1500 linear warm-up iterations; a config
# follows the warm-up with its own PolyLR to the end of its schedule.
tnt_optim_wrapper = dict(
    _delete_=True,  # replaces the SGD of mmseg's schedule bases
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
tnt_warmup = dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500)
