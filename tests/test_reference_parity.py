"""Numerical parity with the reference implementations (timm, official release, mmpretrain).

Golden fixtures come from tools/analysis/make_parity_fixtures.py: reduced-size reference TNTs
with perturbed random weights, their inputs and outputs.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.checkpoint import convert_tnt_checkpoint
from tnt_backbone.models import TNT

FIXTURES = torch.load(os.path.join(os.path.dirname(__file__), 'fixtures', 'tnt_reference.pt'),
                      weights_only=True)
A = FIXTURES['arch']
ARCH = dict(word_dim=A['inner_dim'], sentence_dim=A['embed_dim'], depth=A['depth'],
            word_heads=A['num_heads_inner'], sentence_heads=A['num_heads_outer'],
            mlp_ratio=A['mlp_ratio'])
DEPTH = A['depth']


def build(layout, entry, **kwargs):
    sd, _, detected = convert_tnt_checkpoint(entry['state_dict'])
    assert detected == layout
    model = TNT(arch=ARCH, layout=layout, img_size=FIXTURES['img_size'], **kwargs).eval()
    own = model.state_dict()
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in sd.items() if k in own or not k.startswith(('head.', 'norm.'))},
        strict=False)
    assert not unexpected
    assert all(k.startswith('out_norms.') for k in missing)
    return model, sd


@pytest.mark.parametrize('name,layout', [('timm_v2', 'v2'), ('timm_legacy', 'legacy'),
                                         ('official_v2', 'v2'), ('mmpretrain', 'legacy')])
def test_class_token_matches_reference(name, layout):
    entry = FIXTURES[name]
    model, _ = build(layout, entry, out_type='cls_token', out_indices=(-1,))
    with torch.no_grad():
        out = model(entry['input'])[0]
    assert (out - entry['cls_feature']).abs().max() < 1e-5


@pytest.mark.parametrize('name,layout', [('timm_v2', 'v2'), ('timm_legacy', 'legacy')])
def test_every_block_matches_reference(name, layout):
    entry = FIXTURES[name]
    indices = tuple(range(DEPTH))
    cls_model, _ = build(layout, entry, out_type='cls_token', out_indices=indices)
    map_model, _ = build(layout, entry, out_type='featmap', out_indices=indices)
    with torch.no_grad():
        cls_tokens = cls_model(entry['input'])
        maps = map_model(entry['input'])
    for i in range(DEPTH - 1):  # the last one is checked after the final norm above
        assert (cls_tokens[i] - entry['block_cls'][i]).abs().max() < 1e-5
    for i in indices:  # dense outputs pass through a fresh (identity-initialised) LayerNorm
        ref = entry['block_maps'][i].permute(0, 2, 3, 1)
        ref = F.layer_norm(ref, ref.shape[-1:]).permute(0, 3, 1, 2)
        assert (maps[i] - ref).abs().max() < 1e-4


@pytest.mark.parametrize('name,layout', [('timm_v2', 'v2'), ('timm_legacy', 'legacy')])
def test_classifier_logits_match_reference(name, layout):
    entry = FIXTURES[name]
    model, sd = build(layout, entry, out_type='cls_token', out_indices=(-1,))
    with torch.no_grad():
        logits = F.linear(model(entry['input'])[0], sd['head.fc.weight'], sd['head.fc.bias'])
    assert (logits - entry['logits']).abs().max() < 1e-5


def test_official_and_timm_names_convert_to_the_same_weights():
    a, src_a, _ = convert_tnt_checkpoint(FIXTURES['timm_v2']['state_dict'])
    b, src_b, _ = convert_tnt_checkpoint(FIXTURES['official_v2']['state_dict'])
    assert (src_a, src_b) == ('timm', 'official')
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_conversion_round_trips_through_our_format():
    sd, _, _ = convert_tnt_checkpoint(FIXTURES['timm_legacy']['state_dict'])
    wrapped = {'state_dict': {(k if k.startswith('head.') else f'backbone.{k}'): v
                              for k, v in sd.items()}}
    again, source, layout = convert_tnt_checkpoint(wrapped)
    assert (source, layout) == ('tnt_backbone', 'legacy')
    assert again.keys() == sd.keys() and all(torch.equal(again[k], sd[k]) for k in sd)
    model = TNT(arch=ARCH, layout='legacy', img_size=FIXTURES['img_size'], out_type='cls_token',
                out_indices=(-1,))
    own = {k: v for k, v in sd.items() if not k.startswith('head.')}
    assert set(own) <= set(model.state_dict())
    # every parameter of the reference arrived: same count as the model's own non-dense params
    assert sum(v.numel() for v in own.values()) == sum(
        p.numel() for n, p in model.named_parameters()
        if not n.startswith('out_norms.'))
