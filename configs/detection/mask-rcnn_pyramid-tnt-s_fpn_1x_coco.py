# Mask R-CNN with a PyramidTNT-S backbone, FPN, 1x schedule (12 epochs, 8 GPUs x 2 images).
# Five FPN inputs at strides 4-64: the stage-2 words (4x4 per stride-16 sentence, so natively
# at stride 4, 16 channels) and the four stages' sentence maps (strides 8, 16, 32, 64); the
# FPN's lateral convs bring all to 256, no extra level is needed for P6. Optimizer and
# schedule: configs/_base_/pyramid-tnt_coco-1x.py.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    '../_base_/pyramid-tnt_coco-1x.py',
]

model = dict(
    # mean = std = 0.5 in [0, 1] units, the PyramidTNT ImageNet normalisation
    data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3),
    backbone=dict(
        _delete_=True,  # replaces the ResNet of mmdet's model base
        type='tnt_backbone.PyramidTNT',
        arch='small',
        out_indices=(0, 1, 2, 3),
        word_out_indices=(1, ),
        drop_path_rate=0.1,
        norm_eval=True,  # the stem's BatchNorm would see only 2 images per GPU
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/pyramid-tnt-s_in1k.pth')),
    neck=dict(in_channels=[16, 128, 256, 512, 512]))
