"""TNT backbone: Transformer iN Transformer (Han et al., NeurIPS 2021) for dense prediction."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_

from ...registry import MODELS
from ..layers import LayerNorm, TNTBlock, WordEmbed, WordsToSentence, resize_pos_embed
from .common import FreezeMixin, check_image_batch, init_linear_and_norm

ARCH_KEYS = ('word_dim', 'sentence_dim', 'depth', 'word_heads', 'sentence_heads', 'mlp_ratio')


def _arch(word_dim, sentence_dim, word_heads, sentence_heads):
    return dict(word_dim=word_dim, sentence_dim=sentence_dim, depth=12, word_heads=word_heads,
                sentence_heads=sentence_heads, mlp_ratio=4.)


@MODELS.register_module()
class TNT(FreezeMixin, BaseModule):
    """Transformer iN Transformer backbone for any input size.

    The image is cut into ``patch_size`` x ``patch_size`` visual sentences of 4x4 visual words
    each. Every block runs a word layer (a transformer over the 16 words of each sentence),
    folds the words into their sentence, and runs a sentence layer (a transformer over the
    sentences and the class token). The backbone is plain: it returns maps at one stride (16)
    and, on request, the word map at stride 4; a neck (:class:`SimpleFeaturePyramid`) makes a
    pyramid of them.

    Images are zero-padded at bottom/right to a multiple of ``patch_size``; the sentence position
    embedding, stored for the ``img_size`` grid, is resized bicubically to the current grid at
    every forward (the class-token position is kept).

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'`` (or ``'ti'``, ``'s'``, ``'b'``), or
            a dict with keys ``word_dim, sentence_dim, depth, word_heads, sentence_heads,
            mlp_ratio``. Defaults to ``'small'``.
        layout (str): ``'v2'`` (official 81.5 % weights, timm ``tnt_s_patch16_224``) or
            ``'legacy'`` (paper v1, timm ``tnt_s_legacy_patch16_224``, mmpretrain).
            Defaults to ``'v2'``.
        img_size (int | tuple): Pretraining size that fixes the stored position grid.
            Defaults to 224.
        patch_size (int): Sentence side in pixels. Defaults to 16.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int] | None): Blocks whose output is returned, increasing;
            negatives count from the end. Blocks after the last of them are not built (their
            checkpoint weights are skipped at load). Defaults to None: the last block for
            ``'cls_token'``, else four evenly spaced blocks (``(2, 5, 8, 11)`` at depth 12).
        out_type (str): ``'featmap'``: the sentences as a (B, D, Hp, Wp) map per index, each
            with its own LayerNorm; ``'cls_token'``: the class token, (B, D) per index, the last
            block's after the final norm (the last output block then updates the class token
            alone, since nothing reads its other sentences). Defaults to ``'featmap'``.
        word_map_index (int | None): ``'featmap'`` only: also return the words of this block as
            a stride-4 map (B, c, 4Hp, 4Wp) (the 4x4 words of each sentence are the 4x4 cells of
            its 16x16 pixels), LayerNorm-ed, before the sentence maps. Defaults to None.
        qkv_bias (bool): Defaults to False.
        drop_rate (float): Dropout after projections and position embedding. Defaults to 0.
        attn_drop_rate (float): Dropout on attention weights. Defaults to 0.
        drop_path_rate (float): Stochastic depth, rising linearly to this over the blocks of
            the full depth. Defaults to 0.
        window_size (int): Sentence attention within ``window_size``-sentence windows (ViTDet
            style) in every block not listed in ``global_attn_indices``. Defaults to 0 (all
            global).
        global_attn_indices (Sequence[int] | None): Blocks with global sentence attention when
            ``window_size > 0``. Defaults to None: four evenly spaced blocks, as ViTDet.
        final_norm (bool): Apply the final LayerNorm to the last block's class token
            (``'cls_token'`` outputs only). Defaults to True.
        with_cp (bool | str): Activation checkpointing while training: True recomputes each
            whole block in backward; ``'words'`` only each block's word layer and its fold into
            the sentences, which hold most of a block's activations (16 words of every
            sentence) for a small part of its compute. Defaults to False.
        frozen_stages (int): -1 freezes nothing, 0 the embeddings, k > 0 the embeddings and the
            first k blocks. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training (TNT has none; kept
            for the mmdet/mmseg backbone interface). Defaults to False.
        init_cfg (dict | list | None): ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` (alone
            or in a list) loads a TNT checkpoint of any supported source (see
            :mod:`tnt_backbone.checkpoint`); ``ema=False`` in it takes a training checkpoint's
            plain weights instead of its EMA weights.
    """
    arch_zoo = {
        **dict.fromkeys(['ti', 'tiny'], _arch(12, 192, 2, 3)),
        **dict.fromkeys(['s', 'small'], _arch(24, 384, 4, 6)),
        **dict.fromkeys(['b', 'base'], _arch(40, 640, 4, 10)),
    }
    out_types = ('featmap', 'cls_token')
    words_per_side = 4

    def __init__(self, arch='small', layout='v2', img_size=224, patch_size=16, in_channels=3,
                 out_indices=None, out_type='featmap', word_map_index=None, qkv_bias=False,
                 drop_rate=0., attn_drop_rate=0., drop_path_rate=0., window_size=0,
                 global_attn_indices=None, final_norm=True, with_cp=False,
                 frozen_stages=-1, norm_eval=False, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        if layout not in ('v2', 'legacy'):
            raise ValueError(f"layout must be 'v2' or 'legacy', got {layout!r}")
        if out_type not in self.out_types:
            hint = " (the pyramid is a neck now: out_type='featmap' + " \
                "neck=dict(type='tnt_backbone.SimpleFeaturePyramid', ...))" \
                if out_type == 'pyramid' else ''
            raise ValueError(f'out_type must be one of {self.out_types}, got {out_type!r}{hint}')
        s = self.arch_settings
        self.layout = layout
        self.word_dim, self.sentence_dim, self.depth = s['word_dim'], s['sentence_dim'], \
            s['depth']
        self.patch_size = patch_size
        self.in_channels = in_channels
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.pos_grid = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.out_type = out_type
        evenly_spaced = tuple((k + 1) * self.depth // 4 - 1 for k in range(4))
        if out_indices is None:
            out_indices = (-1,) if out_type == 'cls_token' else evenly_spaced
        self.out_indices = self._parse_indices(out_indices, 'out_indices')
        if list(self.out_indices) != sorted(set(self.out_indices)):
            raise ValueError(f'out_indices must name blocks in increasing order, got {out_indices}')
        if word_map_index is not None:
            if out_type != 'featmap':
                raise ValueError("word_map_index needs out_type='featmap'")
            word_map_index = self._parse_indices(word_map_index, 'word_map_index')[0]
            if word_map_index > max(self.out_indices):
                raise ValueError(f'word_map_index {word_map_index} comes after the last of '
                                 f'out_indices {self.out_indices}: the blocks between would '
                                 f'be trained by nothing')
        self.word_map_index = word_map_index
        self.final_norm = final_norm
        if with_cp not in (False, True, 'words'):
            raise ValueError(f"with_cp must be False, True or 'words', got {with_cp!r}")
        self.with_cp = with_cp
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        num_words = self.words_per_side ** 2
        self.word_embed = WordEmbed(in_channels, self.word_dim, patch_size,
                                    patch_size // self.words_per_side, layout)
        self.word_pos = nn.Parameter(
            torch.zeros(1, self.word_dim, self.words_per_side, self.words_per_side))
        self.sentence_embed = WordsToSentence(num_words, self.word_dim, self.sentence_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.sentence_dim))
        self.sentence_pos = nn.Parameter(
            torch.zeros(1, 1 + self.pos_grid[0] * self.pos_grid[1], self.sentence_dim))
        self.pos_drop = nn.Dropout(drop_rate)

        global_blocks = () if window_size <= 0 else self._parse_indices(
            evenly_spaced if global_attn_indices is None else global_attn_indices,
            'global_attn_indices')
        dpr = torch.linspace(0, drop_path_rate, self.depth).tolist()
        # Blocks after the last output would never run: a parameter without a gradient, which
        # distributed training rejects.
        num_built = max(self.out_indices) + 1
        self.blocks = nn.ModuleList(
            TNTBlock(self.word_dim, self.sentence_dim, num_words, s['word_heads'],
                     s['sentence_heads'], s['mlp_ratio'], layout,
                     0 if i in global_blocks else window_size, qkv_bias, drop_rate,
                     attn_drop_rate, dpr[i]) for i in range(num_built))
        if out_type == 'cls_token':
            self.norm = LayerNorm(self.sentence_dim) \
                if final_norm and num_built == self.depth else nn.Identity()
        else:
            # One norm per output, as Swin does: the token scales differ across depth.
            self.out_norms = nn.ModuleList(
                LayerNorm(self.sentence_dim) for _ in self.out_indices)
            if word_map_index is not None:
                self.word_norm = LayerNorm(self.word_dim)
        self._freeze_stages()

    def _parse_arch(self, arch):
        if isinstance(arch, str):
            if arch.lower() not in self.arch_zoo:
                raise ValueError(f'unknown TNT arch {arch!r}; choose from {set(self.arch_zoo)} '
                                 f'or give a dict with keys {ARCH_KEYS}')
            return dict(self.arch_zoo[arch.lower()])
        if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
            raise ValueError(f'a custom TNT arch must be a dict with exactly the keys '
                             f'{ARCH_KEYS}, got {arch!r}')
        return dict(arch)

    def _parse_indices(self, indices, name):
        indices = [indices] if isinstance(indices, int) else list(indices)
        out = []
        for i in indices:
            if not -self.depth <= i < self.depth:
                raise ValueError(f'{name} has {i}, outside a {self.depth}-block model')
            out.append(i % self.depth)
        return tuple(out)

    # ---------------------------------------------------------------- weights
    def init_weights(self):
        from ...checkpoint import init_from_pretrained, load_pretrained  # imports this module
        if init_from_pretrained(self, lambda cfg: load_pretrained(
                self, cfg['checkpoint'], prefix=cfg.get('prefix'), ema=cfg.get('ema', True))):
            return
        super().init_weights()
        if self.init_cfg is None:
            for p in (self.cls_token, self.sentence_pos, self.word_pos):
                trunc_normal_(p, std=.02)
            self.apply(init_linear_and_norm)

    def no_weight_decay(self):
        """Parameter names that get no weight decay (besides norms and biases)."""
        return {'word_pos', 'sentence_pos', 'cls_token'}

    def get_layer_depth(self, param_name, prefix=''):
        """Layer id for layer-wise lr decay: (layer_id, depth + 2).

        Embeddings are layer 0, block i is layer i + 1, everything after the blocks (final norm,
        output norms) is layer ``depth + 1``.
        """
        name = param_name[len(prefix):] if prefix and param_name.startswith(prefix) \
            else param_name
        num_layers = self.depth + 2
        if name.startswith('blocks.'):
            return int(name.split('.')[1]) + 1, num_layers
        if name.split('.')[0] in self.embedding_names:
            return 0, num_layers
        return num_layers - 1, num_layers

    embedding_names = ('word_embed', 'word_pos', 'sentence_embed', 'cls_token', 'sentence_pos')

    # ---------------------------------------------------------------- train mode
    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        modules = [getattr(self, n) for n in self.embedding_names]
        modules += list(self.blocks[:self.frozen_stages])
        for m in modules:
            if isinstance(m, nn.Parameter):
                m.requires_grad = False
                continue
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    # ---------------------------------------------------------------- forward
    def _check_input(self, x):
        check_image_batch(x, self.in_channels, 'TNT')

    def embed(self, x):
        """x: (B, C, H, W) -> words (B*N, 16, c), sentences (B, 1+N, D), grid (Hp, Wp)."""
        self._check_input(x)
        B, _, H, W = x.shape
        p = self.patch_size
        hw_shape = (math.ceil(H / p), math.ceil(W / p))
        x = F.pad(x, (0, hw_shape[1] * p - W, 0, hw_shape[0] * p - H))
        words = self.word_embed(x, self.word_pos)
        sentences = torch.cat([self.cls_token.expand(B, -1, -1),
                               self.sentence_embed(words, B)], dim=1)
        sentences = sentences + resize_pos_embed(self.sentence_pos, self.pos_grid, hw_shape)
        return words, self.pos_drop(sentences), hw_shape

    def _run_block(self, block, words, sentences, hw_shape, cls_only):
        checkpointing = self.with_cp and self.training and torch.is_grad_enabled()
        if checkpointing and self.with_cp != 'words':
            return cp.checkpoint(block, words, sentences, hw_shape, cls_only,
                                 use_reentrant=False)
        return block(words, sentences, hw_shape, cls_only, checkpoint_words=checkpointing)

    def word_map(self, words, hw_shape):
        """Words (B*Hp*Wp, w*w, c) laid out as the stride-4 map (B, c, w*Hp, w*Wp) they tile."""
        (Hp, Wp), w = hw_shape, self.words_per_side
        c = words.shape[-1]
        x = self.word_norm(words).reshape(-1, Hp, Wp, w, w, c).permute(0, 5, 1, 3, 2, 4)
        return x.reshape(-1, c, Hp * w, Wp * w)

    def forward(self, x):
        """x: (B, C, H, W) float. Returns a tuple by ``out_type`` (see the class docstring)."""
        words, sentences, hw_shape = self.embed(x)
        B = sentences.shape[0]
        outs, word_map = [], None
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # Class-token outputs read nothing else of the last block run, so its sentence
            # layer computes the class token alone (sparing most of that layer).
            cls_only = self.out_type == 'cls_token' and i == last
            words, sentences = self._run_block(block, words, sentences, hw_shape, cls_only)
            if i == self.word_map_index:
                word_map = self.word_map(words, hw_shape)
            if i not in self.out_indices:
                continue
            if self.out_type == 'cls_token':
                outs.append(self.norm(sentences[:, 0]) if i == self.depth - 1
                            else sentences[:, 0])
            else:
                norm = self.out_norms[len(outs)]
                outs.append(norm(sentences[:, 1:]).transpose(1, 2).reshape(B, -1, *hw_shape))
        return tuple(outs) if word_map is None else (word_map, *outs)
