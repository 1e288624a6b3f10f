

# The paper's FLOPs (0.6 / 3.3 / 8.2 / 16.0 G at the training size), counted here as
# multiply-accumulates by tools/analysis/get_flops.py.
@pytest.mark.parametrize('arch,size,gflops', [('tiny', 192, 0.6), ('small', 256, 3.3),
                                              ('medium', 256, 8.2), ('base', 256, 16.0)])
def test_flops_match_paper(load_tool, arch, size, gflops):
    get_flops = load_tool('analysis/get_flops.py')
    model = get_flops.backbone_model(Namespace(model='pyramid-tnt', arch=arch))
    flops, _ = get_flops.count(model, (torch.randn(1, 3, size, size), ))
    assert flops / 1e9 == pytest.approx(gflops, abs=0.05)


def test_benchmark_handles_pyramid_tnt(load_tool, capsys):
    load_tool('analysis/benchmark.py').main(
        ['--model', 'pyramid-tnt', '--arch', 'tiny', '--batch', '2', '--mode', 'train',
         '--iters', '1', '--warmup', '0'])
    out = capsys.readouterr().out
    assert out.startswith('pyramid-tnt-tiny v2 train fp32 192x192 batch 2')
    assert float(re.search(r'ours:\s+([\d.]+) img/s', out).group(1)) > 0
