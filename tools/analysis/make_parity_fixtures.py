"""Writes tests/fixtures/tnt_reference.pt: small TNTs from the reference implementations.

Developer tool, run once; the tests then need neither timm nor mmpretrain. The reference
packages cannot be imported here in the usual way (torchvision has no CPU build), so this runs
with a torchvision stub on the path (see ../shared/reference/README.md)::

    pip install --no-deps --target /tmp/ref timm==1.0.31 mmpretrain==1.2.0 huggingface_hub \
        safetensors pyyaml
    PYTHONPATH=/tmp/ref:../shared/reference .venv/bin/python \
        tools/analysis/make_parity_fixtures.py

For each layout a reduced-size timm TNT (same code paths as TNT-S) gets random weights (every
parameter perturbed, so LayerNorm affine terms and position embeddings matter), and its state
dict, an input and its outputs are saved; likewise for mmpretrain's (legacy-layout) TNT. The
official release's key names are made from timm's by the inverse of timm's own
``checkpoint_filter_fn``, which is checked to map them back.
"""
import argparse

import torch
import tvstub  # noqa: F401  (must precede timm / mmpretrain)
from timm.models import tnt as timm_tnt

ARCH = dict(embed_dim=48, inner_dim=8, depth=2, num_heads_outer=3, num_heads_inner=2,
            mlp_ratio=4.)
IMG = 64
OFFICIAL_NAMES = [
    ('patch_pos', 'outer_pos'), ('pixel_pos', 'inner_pos'), ('pixel_embed', 'patch_embed'),
    ('norm1_proj', 'proj_norm1'), ('norm2_proj', 'proj_norm2'), ('norm_mlp_in', 'inner_norm2'),
    ('norm_in', 'inner_norm1'), ('attn_in', 'inner_attn'), ('mlp_in', 'inner_mlp'),
    ('norm_out', 'outer_norm1'), ('attn_out', 'outer_attn'), ('norm_mlp', 'outer_norm2'),
    ('.mlp.', '.outer_mlp.'),
]


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def timm_entry(legacy, seed):
    model = perturb(timm_tnt.TNT(img_size=IMG, num_classes=5, legacy=legacy, **ARCH), seed)
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        feats = model.forward_features(x)
        final, inter = model.forward_intermediates(x, return_prefix_tokens=True)
    return dict(state_dict=model.state_dict(), input=x, cls_feature=feats[:, 0],
                logits=model.forward_head(feats),
                block_cls=[cls[:, 0] for _, cls in inter],
                block_maps=[m for m, _ in inter])


def to_official(timm_sd, model_ref):
    out = {}
    for k, v in timm_sd.items():
        for new, old in OFFICIAL_NAMES:
            k = k.replace(new, old)
        if k == 'inner_pos':  # the release keeps words as tokens: (1, c, w, w) -> (1, w*w, c)
            v = v.flatten(2).transpose(1, 2)
        out[k] = v.clone()
    back = timm_tnt.checkpoint_filter_fn(dict(out), model_ref)
    assert back.keys() == timm_sd.keys(), set(back) ^ set(timm_sd)
    assert all(torch.equal(back[k], timm_sd[k]) for k in timm_sd)
    return out


def mmpretrain_entry(seed):
    from mmpretrain.models.backbones import TNT as MMPretrainTNT
    arch = dict(embed_dims_outer=ARCH['embed_dim'], embed_dims_inner=ARCH['inner_dim'],
                num_layers=ARCH['depth'], num_heads_outer=ARCH['num_heads_outer'],
                num_heads_inner=ARCH['num_heads_inner'])
    model = MMPretrainTNT(arch=arch, img_size=IMG)
    model.init_weights()
    perturb(model, seed)
    x = torch.randn(2, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        cls = model(x)[0]
    return dict(state_dict=model.state_dict(), input=x, cls_feature=cls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='tests/fixtures/tnt_reference.pt')
    args = parser.parse_args()
    v2, legacy = timm_entry(False, 0), timm_entry(True, 10)
    ref = timm_tnt.TNT(img_size=IMG, num_classes=5, **ARCH)
    fixtures = dict(arch=ARCH, img_size=IMG, timm_v2=v2, timm_legacy=legacy,
                    official_v2=dict(v2, state_dict=to_official(v2['state_dict'], ref)),
                    mmpretrain=mmpretrain_entry(20))
    torch.save(fixtures, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
