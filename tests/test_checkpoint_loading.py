"""Loading TNT checkpoints through init_cfg, the converter tool, and safe resume."""
import pytest
import torch

from tnt_backbone.checkpoint import convert_tnt_checkpoint
from tnt_backbone.models import TNT
from tnt_backbone.models.layers import resize_pos_embed

from test_reference_parity import ARCH, FIXTURES

IMG = FIXTURES['img_size']


def pretrained(path, **kwargs):
    model = TNT(arch=ARCH, img_size=IMG, out_type='cls_token', out_indices=(-1,),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('name,layout', [('timm_v2', 'v2'), ('official_v2', 'v2'),
                                         ('timm_legacy', 'legacy'), ('mmpretrain', 'legacy')])
def test_init_cfg_loads_every_source(tmp_path, name, layout):
    entry = FIXTURES[name]
    path = tmp_path / 'ckpt.pth'
    # released files wrap the weights differently; cover the common wrappers
    wrapped = {'timm_v2': entry['state_dict'], 'official_v2': {'model': entry['state_dict']},
               'timm_legacy': {'state_dict': {f'module.{k}': v
                                              for k, v in entry['state_dict'].items()}},
               'mmpretrain': {'state_dict': {f'backbone.{k}': v
                                             for k, v in entry['state_dict'].items()}}}[name]
    torch.save(wrapped, path)
    model = pretrained(path, layout=layout)
    with torch.no_grad():
        out = model(entry['input'])[0]
    assert (out - entry['cls_feature']).abs().max() < 1e-5


def test_layout_mismatch_is_an_error(tmp_path):
    path = tmp_path / 'v2.pth'
    torch.save(FIXTURES['timm_v2']['state_dict'], path)
    with pytest.raises(ValueError, match="'v2'-layout .* layout='legacy'"):
        pretrained(path, layout='legacy')


def test_arch_mismatch_is_an_error(tmp_path):
    path = tmp_path / 'small.pth'
    torch.save(FIXTURES['timm_v2']['state_dict'], path)
    model = TNT(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match='does not fit this TNT'):
        model.init_weights()


def test_not_a_tnt_checkpoint_is_an_error(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match='not a TNT checkpoint'):
        pretrained(path)
    with pytest.raises(FileNotFoundError, match='not found'):
        pretrained(tmp_path / 'missing.pth')


def test_position_grid_is_resized_on_load(tmp_path):
    path = tmp_path / 'ckpt.pth'
    sd = FIXTURES['timm_v2']['state_dict']
    torch.save(sd, path)
    model = TNT(arch=ARCH, img_size=96, out_type='cls_token', out_indices=(-1,),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    g = IMG // 16
    torch.testing.assert_close(model.sentence_pos.data,
                               resize_pos_embed(sd['patch_pos'], (g, g), (6, 6)))
    assert model.sentence_pos.shape == (1, 37, ARCH['sentence_dim'])


def test_converter_tool_writes_once_and_loads(tmp_path, load_tool):
    tool = load_tool('model_converters/tnt2mm.py')
    src, dst = tmp_path / 'timm.pth', tmp_path / 'out' / 'tnt.pth'
    torch.save(FIXTURES['timm_v2']['state_dict'], src)
    assert tool.convert_file(str(src), str(dst)) == ('timm', 'v2')
    saved = torch.load(dst, weights_only=True)
    assert saved['meta'] == dict(tnt_source='timm', tnt_layout='v2')
    assert 'head.fc.weight' in saved['state_dict']
    assert all(k.startswith(('backbone.', 'head.fc.')) for k in saved['state_dict'])
    before = dst.read_bytes()
    with pytest.raises(FileExistsError, match='exists'):
        tool.convert_file(str(src), str(dst))
    assert dst.read_bytes() == before  # the user's file is untouched
    model = pretrained(dst)
    with torch.no_grad():
        out = model(FIXTURES['timm_v2']['input'])[0]
    assert (out - FIXTURES['timm_v2']['cls_feature']).abs().max() < 1e-5


def test_converter_keeps_a_detector_backbone(tmp_path):
    """A detector checkpoint (backbone.* among neck/head keys) loads into a bare backbone."""
    sd, _, _ = convert_tnt_checkpoint(FIXTURES['timm_v2']['state_dict'])
    det = {f'backbone.{k}': v for k, v in sd.items() if not k.startswith('head.')}
    det['neck.lateral_convs.0.conv.weight'] = torch.zeros(2, 2, 1, 1)
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': det, 'meta': {}}, path)
    model = pretrained(path)
    for k, v in model.state_dict().items():
        if f'backbone.{k}' in det:
            assert torch.equal(v, det[f'backbone.{k}']), k


def test_release_0_1_names_are_read(tmp_path):
    """tnt_backbone 0.1 saved pixel_*/patch_* and inner/bridge/outer names: the same weights
    arrive under today's names (the old names written out by hand, not by the converter)."""
    sd, _, _ = convert_tnt_checkpoint(FIXTURES['timm_v2']['state_dict'])
    old_top = {'word_embed': 'pixel_embed', 'word_pos': 'pixel_pos',
               'sentence_embed': 'patch_embed', 'sentence_pos': 'patch_pos'}
    old_block = {'word_layer': 'inner', 'words_to_sentence': 'bridge',
                 'sentence_layer': 'outer'}
    old = {}
    for k, v in sd.items():
        parts = k.split('.')
        if parts[0] == 'blocks':
            parts[2] = old_block[parts[2]]
        else:
            parts[0] = old_top.get(parts[0], parts[0])
        old['backbone.' + '.'.join(parts) if parts[0] != 'head' else k] = v
    assert 'backbone.blocks.0.inner.attn.qkv.weight' in old
    again, source, _ = convert_tnt_checkpoint({'state_dict': old})
    assert source == 'tnt_backbone-0.1'
    assert again.keys() == sd.keys() and all(torch.equal(again[k], sd[k]) for k in sd)
    path = tmp_path / 'old.pth'
    torch.save({'state_dict': old}, path)
    with torch.no_grad():
        out = pretrained(path)(FIXTURES['timm_v2']['input'])[0]
    assert (out - FIXTURES['timm_v2']['cls_feature']).abs().max() < 1e-5


def test_blocks_the_model_does_not_build_are_skipped_and_reported(tmp_path, monkeypatch):
    import tnt_backbone.checkpoint as checkpoint
    logged = []
    monkeypatch.setattr(checkpoint, 'print_log', lambda msg, **kw: logged.append((msg, kw)))
    path = tmp_path / 'ckpt.pth'
    torch.save(FIXTURES['timm_v2']['state_dict'], path)
    model = TNT(arch=ARCH, img_size=IMG, out_indices=(0,),
                init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    assert len(model.blocks) == 1
    assert any(msg.startswith(f'skipped blocks 1-{ARCH["depth"] - 1} ') for msg, _ in logged)
    assert all(kw.get('level', 20) < 30 for _, kw in logged)  # no warning: nothing is missing
    sd, _, _ = convert_tnt_checkpoint(FIXTURES['timm_v2']['state_dict'])
    own = model.state_dict()
    for k in own:
        if not k.startswith('out_norms.'):
            assert torch.equal(own[k], sd[k]), k
