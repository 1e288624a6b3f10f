"""Writes tests/fixtures/pyramid_tnt_reference.pt: official PyramidTNT outputs for seeded weights.

Developer tool, run once; the tests then need neither the official code nor timm. The official
``tnt_pytorch/pyramid_tnt.py`` (huawei-noah/Efficient-AI-Backbones, Apache-2.0) imports timm,
which runs here with a torchvision stub (see ../shared/reference/README.md)::

    pip install --no-deps --target /tmp/ref timm==1.0.31 huggingface_hub safetensors pyyaml \
        pillow
    PYTHONPATH=/tmp/ref:../shared/reference:DIR_OF_pyramid_tnt.py .venv/bin/python \
        tools/analysis/make_pyramid_tnt_fixtures.py

Weights are not stored: for each arch (and tiny with SE) the official model's state dict is
overwritten by :func:`seeded_state_dict` (a seed and the official key names and shapes, which
are stored), so the test rebuilds the same weights from the same spec. Stored outputs, at the
official training size: the pooled final feature, the logits, the last stage's normalised
sentences and (tiny only) its raw words.
"""
import argparse

import torch

ARCHS = {  # fixture name -> (official constructor, keyword arguments, input size)
    'tiny': ('ptnt_ti_patch16_192', {}, 192),
    'small': ('ptnt_s_patch16_256', {}, 256),
    'medium': ('ptnt_m_patch16_256', {}, 256),
    'base': ('ptnt_b_patch16_256', {}, 256),
    'tiny_se': ('ptnt_ti_patch16_192', dict(se=1), 192),
}


def seeded_state_dict(spec, seed):
    """spec: [(key, shape, dtype name)] -> state dict of random values.

    ``0.05 * randn`` everywhere; 1-D weights (norm scales) and BatchNorm running variances get
    +1, integer counters are 0.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape, dtype in spec:
        if not getattr(torch, dtype).is_floating_point:
            out[key] = torch.zeros(shape, dtype=getattr(torch, dtype))
            continue
        v = torch.randn(shape, generator=g) * 0.05
        if len(shape) == 1 and key.endswith(('weight', 'running_var')):
            v += 1
        out[key] = v
    return out


def seeded_input(seed, size):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def entry(official, name, kwargs, size, seed):
    model = getattr(official, name)(**kwargs).eval()
    spec = [(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
            for k, v in model.state_dict().items()]
    model.load_state_dict(seeded_state_dict(spec, seed))
    last = {}
    model.stages[3].register_forward_hook(lambda m, i, o: last.update(words=o[0], sentences=o[1]))
    x = seeded_input(seed + 1, size)
    with torch.no_grad():
        feature = model.forward_features(x)
        logits = model.head(feature)
        sentences = model.norm(last['sentences'])
    out = dict(official_name=name, kwargs=kwargs, img_size=size, seed=seed, spec=spec,
               feature=feature, logits=logits, stage3_sentences=sentences)
    if size == 192:  # words for the small-grid archs only, to keep the file small
        out['stage3_words'] = last['words']
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='tests/fixtures/pyramid_tnt_reference.pt')
    args = parser.parse_args()
    import tvstub  # noqa: F401  (must precede timm)
    import pyramid_tnt as official
    fixtures = {arch: entry(official, name, kwargs, size, seed)
                for seed, (arch, (name, kwargs, size)) in enumerate(ARCHS.items())}
    torch.save(fixtures, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
