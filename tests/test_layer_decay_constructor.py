"""Layer-wise lr decay constructor: lr per block and no weight decay where none is due."""
import torch
from mmengine.optim import build_optim_wrapper

import tnt_backbone  # noqa: F401
from tnt_backbone.models import TNT

from test_tnt_backbone import SMALL_ARCH  # depth 4 -> layer ids 0..5


class Detector(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = TNT(arch=SMALL_ARCH, frozen_stages=0)
        self.neck = torch.nn.Conv2d(48, 8, 1)


def test_lr_scales_and_weight_decay_groups():
    model = Detector()
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='tnt_backbone.LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=0.5)))
    groups = wrapper.optimizer.param_groups
    where = {id(p): g for g in groups for p in g['params']}
    named = dict(model.named_parameters())

    def group(name):
        return where[id(named[name])]

    # block i is layer i + 1 of 6: lr = base * 0.5 ** (6 - 1 - (i + 1))
    for i in range(4):
        g = group(f'backbone.blocks.{i}.sentence_layer.mlp.fc1.weight')
        assert abs(g['lr'] - 1e-3 * 0.5 ** (4 - i)) < 1e-12
        assert g['weight_decay'] == 0.05
        assert group(f'backbone.blocks.{i}.sentence_layer.mlp.fc1.bias')['weight_decay'] == 0.
        assert group(f'backbone.blocks.{i}.word_layer.norm1.weight')['weight_decay'] == 0.
    # after the blocks: full lr; outside the backbone: full lr and decay on weights
    assert group('backbone.out_norms.0.weight')['lr'] == 1e-3
    assert group('neck.weight')['lr'] == 1e-3 and group('neck.weight')['weight_decay'] == 0.05
    assert group('neck.bias')['weight_decay'] == 0.
    # frozen embeddings (frozen_stages=0) are left out entirely
    for frozen in ('backbone.cls_token', 'backbone.sentence_pos',
                   'backbone.word_embed.proj.weight'):
        assert id(named[frozen]) not in where
    n_trainable = sum(p.requires_grad for p in model.parameters())
    assert sum(len(g['params']) for g in groups) == n_trainable


def test_position_embeddings_get_no_weight_decay():
    model = Detector()
    model.backbone = TNT(arch=SMALL_ARCH)
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
        constructor='tnt_backbone.LayerDecayOptimWrapperConstructor'))
    named = dict(model.named_parameters())
    for g in wrapper.optimizer.param_groups:
        assert g['lr'] == 1e-3  # rate 1.0: no decay across layers
        for p in g['params']:
            if p is named['backbone.sentence_pos'] or p is named['backbone.cls_token'] \
                    or p is named['backbone.word_pos']:
                assert g['weight_decay'] == 0.
