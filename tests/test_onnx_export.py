"""ONNX export checked with ONNX Runtime: the TNT-Ti backbone with dynamic size (outputs at the
export size and at sizes not multiples of 16 that the export never saw) and the toy classifier
through tools/deployment/pytorch2onnx.py."""
import os.path as osp

import onnx
import pytest
import torch

from conftest import REPO_ROOT
from tnt_backbone.export import export_onnx, onnx_max_rel_error
from tnt_backbone.models import TNT
from tnt_backbone.ops.word_attention import HAS_WORD_ATTENTION_KERNEL

CLS = osp.join(REPO_ROOT, 'configs', 'classification', 'tnt-ti-p16_toy.py')


def test_tnt_ti_backbone_with_dynamic_size(tmp_path):
    torch.manual_seed(0)
    net = TNT(arch='tiny', out_type='featmap', out_indices=(3, 11)).eval()
    out = str(tmp_path / 'tnt-ti.onnx')
    export_onnx(net, (64, 80), out, dynamic=True)
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert 'word_attention' not in ops  # the kernel's SDPA path went into the graph
    for batch, h, w in [(2, 64, 80), (1, 87, 71)]:
        assert onnx_max_rel_error(net, out, torch.randn(batch, 3, h, w)) < 1e-4, (batch, h, w)


@pytest.mark.skipif(not HAS_WORD_ATTENTION_KERNEL, reason='needs the built kernel')
def test_eager_model_still_uses_the_kernel(monkeypatch):
    """Export takes the SDPA path; ordinary calls keep the fused kernel."""
    calls = []
    kernel = torch.ops.tnt_backbone.word_attention
    monkeypatch.setattr(torch.ops.tnt_backbone, 'word_attention',
                        lambda *a: calls.append(1) or kernel(*a))
    net = TNT(arch='tiny', out_type='featmap', out_indices=(0,)).eval()
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32))
    assert calls


def test_toy_classifier_through_the_tool(load_tool, random_checkpoint, tmp_path):
    out = tmp_path / 'cls.onnx'
    errors = load_tool('deployment/pytorch2onnx.py').main(
        [CLS, random_checkpoint(CLS), '--shape', '64', '64', '--out', str(out), '--dynamic'])
    assert len(errors) == 2 and max(errors.values()) < 1e-4, errors
    graph = onnx.load(str(out)).graph
    assert graph.output[0].type.tensor_type.shape.dim[1].dim_value == 5  # the 5 toy classes
    with pytest.raises(SystemExit, match='exists; pass --overwrite'):
        load_tool('deployment/pytorch2onnx.py').main(
            [CLS, '--shape', '64', '64', '--out', str(out)])
