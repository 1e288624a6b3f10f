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
from mmengine.model import BaseModule

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
# Names outside the blocks that timm, mmpretrain and our 0.1 release share.
PIXEL_PATCH_TO_OURS = {'pixel_embed': 'word_embed', 'pixel_pos': 'word_pos',
                       'patch_pos': 'sentence_pos'}
# timm name (after ``blocks.i.`` or at the top level) -> ours
TIMM_TO_OURS = {
    **PIXEL_PATCH_TO_OURS, 'norm1_proj': 'sentence_embed.norm1', 'proj': 'sentence_embed.fc',
    'norm2_proj': 'sentence_embed.norm2', 'head': 'head.fc',
}
TIMM_BLOCK_TO_OURS = {
    'norm_in': 'word_layer.norm1', 'attn_in': 'word_layer.attn', 'norm_mlp_in': 'word_layer.norm2',
    'mlp_in': 'word_layer.mlp', 'norm1_proj': 'words_to_sentence.norm1',
    'proj': 'words_to_sentence.fc', 'norm2_proj': 'words_to_sentence.norm2',
    'norm_out': 'sentence_layer.norm1', 'attn_out': 'sentence_layer.attn',
    'norm_mlp': 'sentence_layer.norm2', 'mlp': 'sentence_layer.mlp',
}
MMPRETRAIN_TO_OURS = {
    **PIXEL_PATCH_TO_OURS, 'norm1_proj': 'sentence_embed.norm1',
    'projection': 'sentence_embed.fc', 'norm2_proj': 'sentence_embed.norm2', 'head.fc': 'head.fc',
}
MMPRETRAIN_BLOCK_TO_OURS = {
    'inner_block': 'word_layer', 'outer_block': 'sentence_layer',
    'norm_proj': 'words_to_sentence.norm1', 'projection': 'words_to_sentence.fc',
}
MMPRETRAIN_LAYER_TO_OURS = {
    'norm_attn': 'norm1', 'attn.attn.in_proj_weight': 'attn.qkv.weight',
    'attn.attn.in_proj_bias': 'attn.qkv.bias', 'attn.attn.out_proj': 'attn.proj',
    'norm_ffn': 'norm2', 'ffn.layers.0.0': 'mlp.fc1', 'ffn.layers.1': 'mlp.fc2',
}
# tnt_backbone 0.1 named words/sentences pixel/patch and the block parts inner/bridge/outer.
V01_TO_OURS = {**PIXEL_PATCH_TO_OURS, 'patch_embed': 'sentence_embed'}
V01_BLOCK_TO_OURS = {'inner': 'word_layer', 'bridge': 'words_to_sentence',
                     'outer': 'sentence_layer'}


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


def _rename_blocks(sd, top_table, block_table, block_prefix='blocks'):
    """Renames ``<block_prefix>.i.<rest>`` by ``block_table`` and other keys by ``top_table``."""
    out = OrderedDict()
    for k, v in sd.items():
        m = re.match(rf'{block_prefix}\.(\d+)\.(.*)', k)
        out[f'blocks.{m.group(1)}.{_rename(m.group(2), block_table)}' if m
            else _rename(k, top_table)] = v
    return out


def _from_timm(sd):
    fused = OrderedDict()
    for k, v in sd.items():
        if re.search(r'\.attn_(in|out)\.v\.', k):
            continue  # folded into qkv below
        if re.search(r'\.attn_(in|out)\.qk\.', k):
            v = torch.cat([v, sd[k.replace('.qk.', '.v.')]], dim=0)
            k = k.replace('.qk.', '.qkv.')
        fused[k] = v
    return _rename_blocks(fused, TIMM_TO_OURS, TIMM_BLOCK_TO_OURS)


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
    for k, v in _rename_blocks(sd, MMPRETRAIN_TO_OURS, MMPRETRAIN_BLOCK_TO_OURS,
                               'layers').items():
        m = re.match(r'(blocks\.\d+\.(?:word|sentence)_layer)\.(.*)', k)
        out[f'{m.group(1)}.{_rename(m.group(2), MMPRETRAIN_LAYER_TO_OURS)}' if m else k] = v
    return out


# source -> (a key only that source's checkpoints have, converter to our names)
CONVERTERS = OrderedDict([
    ('tnt_backbone', ('blocks.0.word_layer.attn.qkv.weight', OrderedDict)),
    ('tnt_backbone-0.1', ('blocks.0.inner.attn.qkv.weight',
                          lambda sd: _rename_blocks(sd, V01_TO_OURS, V01_BLOCK_TO_OURS))),
    ('timm', ('blocks.0.attn_in.qk.weight', _from_timm)),
    ('official', ('blocks.0.inner_attn.qk.weight', _from_official)),
    ('mmpretrain', ('layers.0.inner_block.attn.attn.in_proj_weight', _from_mmpretrain)),
])
SOURCES = tuple(CONVERTERS)


def detect_source(state_dict):
    """Names the key scheme of an unwrapped state dict: one of :data:`SOURCES`."""
    for source, (marker, _) in CONVERTERS.items():
        if marker in state_dict:
            return source
    raise ValueError('not a TNT checkpoint: none of the key schemes of timm, the official '
                     'release, mmpretrain or tnt_backbone matches (e.g. no '
                     f'"blocks.0.attn_in.qk.weight"); first keys: {sorted(state_dict)[:5]}')


def detect_layout(state_dict):
    """'v2' or 'legacy' from a state dict in our key names: legacy blocks norm each word."""
    word_norm = state_dict['blocks.0.words_to_sentence.norm1.weight'].shape[0]
    return 'legacy' if word_norm == state_dict['word_pos'].shape[1] else 'v2'


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
    sd = CONVERTERS[source][1](sd)
    word_pos = sd['word_pos']
    if word_pos.dim() == 3:  # official v2 stores words as tokens: (1, n, c) -> (1, c, w, w)
        w = math.isqrt(word_pos.shape[1])
        sd['word_pos'] = word_pos.transpose(1, 2).reshape(1, -1, w, w)
    return sd, source, detect_layout(sd)


def square_grid(num_tokens, name):
    """(side, side) of a square grid of ``num_tokens`` position tokens; an error otherwise."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f'{name} has {num_tokens} grid tokens, not a square grid')
    return side, side


def load_converted(model, sd, filename, what, new_modules=(), logger='current'):
    """Loads a converted state dict into ``model`` after checking every shape.

    A shape mismatch is an error naming the key and ``what`` (the model, e.g. its arch);
    missing keys outside ``new_modules`` (name prefixes of modules the checkpoint cannot hold,
    such as output norms) and unexpected keys are reported as warnings.
    """
    own = model.state_dict()
    for k, v in sd.items():
        if k in own and own[k].shape != v.shape:
            raise ValueError(f'{filename} does not fit {what}: {k} has shape {tuple(v.shape)} '
                             f'in the checkpoint, {tuple(own[k].shape)} in the model')
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(tuple(new_modules))]
    if missing:
        print_log(f'missing keys in {filename}: {missing}', logger=logger, level=30)
    if unexpected:
        print_log(f'unexpected keys in {filename}: {unexpected}', logger=logger, level=30)
    return missing, unexpected


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
    unbuilt = sorted({int(m.group(1)) for m in map(re.compile(r'blocks\.(\d+)\.').match, sd)
                      if m and int(m.group(1)) >= len(model.blocks)})
    if unbuilt:
        sd = {k: v for k, v in sd.items()
              if not (k.startswith('blocks.') and int(k.split('.')[1]) in unbuilt)}
        print_log(f'skipped blocks {unbuilt[0]}-{unbuilt[-1]} of {filename}: the model stops '
                  f'at block {len(model.blocks) - 1}, its last output', logger=logger)
    ckpt_grid = square_grid(sd['sentence_pos'].shape[1] - 1, f'{filename}: sentence_pos')
    if ckpt_grid != model.pos_grid:
        print_log(f'resizing sentence_pos of {filename} from {ckpt_grid} to {model.pos_grid}',
                  logger=logger)
        sd['sentence_pos'] = resize_pos_embed(sd['sentence_pos'], ckpt_grid, model.pos_grid)
    what = (f'this TNT (arch word/sentence dims {model.word_dim}/{model.sentence_dim}, depth '
            f'{model.depth}; checkpoint dims: word {sd["word_pos"].shape[1]}, sentence '
            f'{sd["cls_token"].shape[-1]})')
    print_log(f'loading {source} TNT checkpoint {filename} (layout {layout})', logger=logger)
    # the output norms are new modules: not missing in any real sense
    return load_converted(model, sd, filename, what, ('out_norms.', 'word_norm.'), logger)


def init_from_pretrained(module, load):
    """Applies ``module.init_cfg`` with its ``Pretrained`` entry (alone or in a list) given to
    ``load(entry)``, a converting loader: mmengine's ``PretrainedInit`` would load foreign keys
    unconverted. The other entries of a list run first. Returns whether there was one."""
    cfgs = module.init_cfg if isinstance(module.init_cfg, list) else [module.init_cfg]
    pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') == 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError(f'init_cfg has {len(pretrained)} Pretrained entries; keep one')
    if not pretrained:
        return False
    others = [c for c in cfgs if c is not pretrained[0]]
    if others:
        full, module.init_cfg = module.init_cfg, others
        BaseModule.init_weights(module)
        module.init_cfg = full
    load(pretrained[0])
    module._is_init = True  # keep mmengine from re-applying init_cfg
    return True


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
