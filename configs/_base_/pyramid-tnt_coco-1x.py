# The schedule, runtime and optimizer of the PyramidTNT COCO 1x configs (12 epochs, 8 GPUs x 2
# images), listed after an mmdet model and dataset base. The optimizer follows mmdet's Swin
# Mask R-CNN 1x: AdamW lr 1e-4, weight decay 0.05 (none on norms, biases and position
# embeddings), 1000 warm-up iterations, steps at epochs 8 and 11.
_base_ = ['mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py']
custom_imports = dict(imports=['tnt_backbone'], allow_failed_imports=False)

optim_wrapper = dict(
    _delete_=True,  # replaces the SGD of mmdet's schedule base
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))  # no per-block lr scaling, as Swin/PVT
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
