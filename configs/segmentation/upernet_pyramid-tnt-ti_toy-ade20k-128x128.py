# UperNet, PyramidTNT-Ti on the generated toy dataset (tools/data/make_toy_ade20k.py): the TNT
# toy demo's data, heads and schedule with the real PyramidTNT-Ti backbone, from scratch. Five
# levels as in upernet_pyramid-tnt-s_8xb2-160k_ade20k-512x512.py: stage-2 words at stride 4,
# the four stages at strides 8-64.
_base_ = './upernet_tnt-ti-p16_toy-ade20k-128x128.py'

model = dict(
    backbone=dict(_delete_=True, type='tnt_backbone.PyramidTNT', arch='tiny', img_size=128,
                  out_indices=(0, 1, 2, 3), word_out_indices=(1, ), norm_eval=False),
    neck=None,  # PyramidTNT is multi-scale itself: no neck, whatever the TNT base uses
    decode_head=dict(in_channels=[10, 80, 160, 320, 320], in_index=[0, 1, 2, 3, 4]),
    auxiliary_head=dict(in_channels=160, in_index=2))
# the lr at which the README's PyramidTNT toy figures were measured (the TNT toy now uses 2e-3)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
