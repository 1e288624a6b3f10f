"""TNT checkpoint conversion: timm (v2 and legacy), official huawei-noah, mmpretrain, ours.

Every source is mapped to this package's key names (``TNT.state_dict()`` keys); a classifier's
head becomes ``head.fc.*``. :func:`load_pretrained` is what ``init_cfg=dict(type='Pretrained')``
uses; ``tools/model_converters/tnt2mm.py`` writes the converted file once.
"""
import math
import re
from collections import OrderedDict

import torch
from mmengine.logging import print_log

from .engine.weights import load_state_dict_from
from .models.layers import resize_pos_embed

# official huawei-noah name fragment -> timm name fragment
OFFICIAL_TO_TIMM = [
    ('outer_pos', 'patch_pos'), ('inner_pos', 'pixel_pos'), ('patch_embed', 'pixel_embed'),
    ('proj_norm1', 'norm1_proj'), ('proj_norm2', 'norm2_proj'), ('inner_norm1', 'norm_in'),
    ('inner_attn', 'attn_in'), ('inner_norm2', 'norm_mlp_in'), ('inner_mlp', 'mlp_in'),
    ('outer_norm1', 'norm_out'), ('outer_attn', 'attn_out'), ('outer_norm2', 'norm_mlp'),
    ('outer_mlp', 'mlp'),
]
# timm name (after ``blocks.i.`` or at the top level) -> ours
TIMM_TO_OURS = {
    'norm1_proj': 'patch_embed.norm1', 'proj': 'patch_embed.fc', 'norm2_proj': 'patch_embed.norm2',
    'head': 'head.fc',
}
TIMM_BLOCK_TO_OURS = {
    'norm_in': 'inner.norm1', 'attn_in': 'inner.attn', 'norm_mlp_in': 'inner.norm2',
    'mlp_in': 'inner.mlp', 'norm1_proj': 'bridge.norm1', 'proj': 'bridge.fc',
    'norm2_proj': 'bridge.norm2', 'norm_out': 'outer.norm1', 'attn_out': 'outer.attn',
    'norm_mlp': 'outer.norm2', 'mlp': 'outer.mlp',
}
MMPRETRAIN_TO_OURS = {
    'norm1_proj': 'patch_embed.norm1', 'projection': 'patch_embed.fc',
    'norm2_proj': 'patch_embed.norm2', 'head.fc': 'head.fc',
}
MMPRETRAIN_BLOCK_TO_OURS = {
    'inner_block': 'inner', 'outer_block': 'outer', 'norm_proj': 'bridge.norm1',
    'projection': 'bridge.fc',
}
MMPRETRAIN_LAYER_TO_OURS = {
    'norm_attn': 'norm1', 'attn.attn.in_proj_weight': 'attn.qkv.weight',
    'attn.attn.in_proj_bias': 'attn.qkv.bias', 'attn.attn.out_proj': 'attn.proj',
    'norm_ffn': 'norm2', 'ffn.layers.0.0': 'mlp.fc1', 'ffn.layers.1': 'mlp.fc2',
}
SOURCES = ('tnt_backbone', 'timm', 'official', 'mmpretrain')


def _rename(name, table):
    """Replaces the longest leading dotted prefix of ``name`` found in ``table``."""
    parts = name.split('.')
    for n in range(len(parts), 0, -1):
        head = '.'.join(parts[:n])
        if head in table:
            return '.'.join([table[head]] + parts[n:])
    return name


def unwrap_state_dict(checkpoint):
    """Returns (state_dict, head) from any checkpoint file's content.

    Unwraps ``state_dict``/``model``, strips ``module.``; with ``backbone.``-prefixed keys (a
    classifier of ours or of mmpretrain, or a detector) keeps the backbone's keys, and the
    classifier head ``head.fc.*`` if present.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'a TNT checkpoint must be a dict, got {type(checkpoint).__name__}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    sd = OrderedDict((k[len('module.'):] if k.startswith('module.') else k, v)
                     for k, v in checkpoint.items() if isinstance(v, torch.Tensor))
    if not sd:
        raise ValueError('the checkpoint holds no tensors')
    if any(k.startswith('backbone.') for k in sd):
        head = {k: v for k, v in sd.items() if k.startswith('head.fc.')}
        sd = OrderedDict((k[len('backbone.'):], v) for k, v in sd.items()
                         if k.startswith('backbone.'))
        sd.update(head)
    return sd


def detect_source(state_dict):
    """Names the key scheme of an unwrapped state dict: one of :data:`SOURCES`."""
    keys = set(state_dict)
    if 'blocks.0.inner.attn.qkv.weight' in keys:
        return 'tnt_backbone'
    if 'blocks.0.attn_in.qk.weight' in keys:
        return 'timm'
    if 'blocks.0.inner_attn.qk.weight' in keys or 'outer_pos' in keys:
        return 'official'
    if 'layers.0.inner_block.attn.attn.in_proj_weight' in keys:
        return 'mmpretrain'
    raise ValueError('not a TNT checkpoint: none of the key schemes of timm, the official '
                     'release, mmpretrain or tnt_backbone matches (e.g. no '
                     f'"blocks.0.attn_in.qk.weight"); first keys: {sorted(keys)[:5]}')


def _from_timm(sd):
    out = OrderedDict()
    for k, v in sd.items():
        m = re.match(r'blocks\.(\d+)\.(.*)', k)
        if not m:
            out[_rename(k, TIMM_TO_OURS)] = v
            continue
        i, rest = m.groups()
        if rest.startswith(('attn_in.v.', 'attn_out.v.')):
            continue  # folded into qkv below
        if rest.startswith(('attn_in.qk.', 'attn_out.qk.')):
            v = torch.cat([v, sd[k.replace('.qk.', '.v.')]], dim=0)
            rest = rest.replace('.qk.', '.qkv.')
        out[f'blocks.{i}.{_rename(rest, TIMM_BLOCK_TO_OURS)}'] = v
    return out


def _from_official(sd):
    renamed = OrderedDict()
    for k, v in sd.items():
        if k == 'outer_tokens':
            continue
        for old, new in OFFICIAL_TO_TIMM:
            k = k.replace(old, new)
        renamed[k] = v
    return _from_timm(renamed)


def _from_mmpretrain(sd):
    out = OrderedDict()
    for k, v in sd.items():
        m = re.match(r'layers\.(\d+)\.(inner_block|outer_block)\.(.*)', k)
        if m:
            i, part, rest = m.groups()
            out[f'blocks.{i}.{MMPRETRAIN_BLOCK_TO_OURS[part]}.'
                f'{_rename(rest, MMPRETRAIN_LAYER_TO_OURS)}'] = v
            continue
        m = re.match(r'layers\.(\d+)\.(.*)', k)
        if m:
            out[f'blocks.{m.group(1)}.{_rename(m.group(2), MMPRETRAIN_BLOCK_TO_OURS)}'] = v
        else:
            out[_rename(k, MMPRETRAIN_TO_OURS)] = v
    return out


CONVERTERS = {'tnt_backbone': OrderedDict, 'timm': _from_timm, 'official': _from_official,
              'mmpretrain': _from_mmpretrain}


def detect_layout(state_dict):
    """'v2' or 'legacy' from a state dict in our key names: legacy blocks norm each word."""
    word_norm = state_dict['blocks.0.bridge.norm1.weight'].shape[0]
    return 'legacy' if word_norm == state_dict['pixel_pos'].shape[1] else 'v2'


def convert_tnt_checkpoint(checkpoint):
    """Converts a TNT checkpoint of any supported source to our key names.

    Args:
        checkpoint (dict): The loaded file's content.

    Returns:
        tuple[OrderedDict, str, str]: (state dict in our names, source, layout). A classifier
        head, if present, is kept as ``head.fc.weight``/``head.fc.bias``.
    """
    sd = unwrap_state_dict(checkpoint)
    source = detect_source(sd)
    sd = CONVERTERS[source](sd)
    pixel_pos = sd['pixel_pos']
    if pixel_pos.dim() == 3:  # official v2 stores words as tokens: (1, n, c) -> (1, c, w, w)
        w = math.isqrt(pixel_pos.shape[1])
        sd['pixel_pos'] = pixel_pos.transpose(1, 2).reshape(1, -1, w, w)
    return sd, source, detect_layout(sd)


def _grid_of(num_tokens, name):
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f'{name} has {num_tokens} grid tokens, not a square grid')
    return side, side


def load_pretrained(model, filename, prefix=None, ema=True, logger='current'):
    """Loads a TNT checkpoint of any supported source into a :class:`TNT` backbone.

    ``filename`` is a local file or an http(s) URL (see :mod:`tnt_backbone.engine.weights`).
    Checks layout and arch, resizes the sentence position grid to the model's, and reports
    missing and unexpected keys. ``prefix`` (e.g. ``'backbone.'``) selects a sub-model's keys
    of a larger checkpoint; ``backbone.`` keys are found without it. ``ema`` takes a training
    checkpoint's EMA weights when it has them.
    """
    checkpoint = load_state_dict_from(filename, ema=ema, logger=logger)
    if prefix:
        checkpoint = {k[len(prefix):]: v for k, v in checkpoint.items() if k.startswith(prefix)}
        if not checkpoint:
            raise ValueError(f'{filename} has no keys starting with {prefix!r}')
    try:
        sd, source, layout = convert_tnt_checkpoint(checkpoint)
    except (TypeError, ValueError) as e:
        raise ValueError(f'{filename}: {e}') from e
    if layout != model.layout:
        raise ValueError(f"{filename} holds '{layout}'-layout TNT weights ({source} keys) but the "
                         f"model was built with layout='{model.layout}'; set layout='{layout}'")
    own = model.state_dict()
    # the classifier head, and the final norm of a dense-output model, have no place here
    sd = {k: v for k, v in sd.items() if k in own or not k.startswith(('head.', 'norm.'))}
    ckpt_grid = _grid_of(sd['patch_pos'].shape[1] - 1, f'{filename}: patch_pos')
    if ckpt_grid != model.pos_grid:
        print_log(f'resizing patch_pos of {filename} from {ckpt_grid} to {model.pos_grid}',
                  logger=logger)
        sd['patch_pos'] = resize_pos_embed(sd['patch_pos'], ckpt_grid, model.pos_grid)
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(
                f'{filename} does not fit this TNT (arch inner/outer dims '
                f'{model.inner_dim}/{model.embed_dims}, depth {model.num_layers}): {k} has shape '
                f'{tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the model. '
                f'Checkpoint dims: inner {sd["pixel_pos"].shape[1]}, outer '
                f'{sd["cls_token"].shape[-1]}')
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # Dense-output norms and the pyramid are new modules: not missing in any real sense.
    missing = [k for k in missing if not k.startswith(('out_norms.', 'pyramid.', 'word_map.'))]
    print_log(f'loaded {source} TNT checkpoint {filename} (layout {layout})', logger=logger)
    if missing:
        print_log(f'missing keys in {filename}: {missing}', logger=logger, level=30)
    if unexpected:
        print_log(f'unexpected keys in {filename}: {unexpected}', logger=logger, level=30)
    return missing, unexpected


def refuse_unconverted(checkpoint, filename):
    """Raises if ``checkpoint`` holds TNT weights in a foreign key scheme: a loader that does not
    convert keys (mmengine's ``load_from``, a ``Pretrained`` init of a whole detector) would
    leave every TNT weight unloaded."""
    try:
        source = detect_source(unwrap_state_dict(checkpoint))
    except (TypeError, ValueError):  # not a TNT checkpoint: not ours to judge
        return
    if source != 'tnt_backbone':
        raise ValueError(
            f'{filename} holds {source}-format TNT weights, whose keys this loader would not '
            f'convert. Give it to the backbone instead: model.backbone.init_cfg='
            f"dict(type='Pretrained', checkpoint='{filename}'), or convert it once with "
            f'tools/model_converters/tnt2mm.py')
