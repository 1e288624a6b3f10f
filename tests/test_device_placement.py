"""Both backbones and the pyramid neck make every tensor they need on their input's device.

CI has no GPU, so the meta device stands in for CUDA (tensors with shapes and no data), and
every operator of the forward and backward is checked not to mix devices: a tensor made on the
CPU by default (a window mask, a resize matrix, a drop-path mask) would fail on CUDA tensors.
Meta's own kernels check that for elementwise operators but not for matrix products, so
:class:`OneDevice` checks each operator's tensors itself.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from tnt_backbone.models import TNT, PyramidTNT
from tnt_backbone.models.necks import SimpleFeaturePyramid

CASES = {
    # the detection configs' TNT: windows, global blocks, word layers recomputed, drop path
    'tnt-windowed': (lambda: TNT(arch='tiny', window_size=4, global_attn_indices=(5, 11),
                                 with_cp='words', drop_path_rate=0.1), (2, 3, 96, 136)),
    'tnt-cls-token': (lambda: TNT(arch='tiny', out_type='cls_token', out_indices=(-1, )),
                      (2, 3, 224, 224)),
    # not its training size: position embeddings and attention biases are resized
    'pyramid-tnt': (lambda: PyramidTNT(arch='tiny', drop_path_rate=0.1, with_cp='words'),
                    (1, 3, 200, 328)),
}


class OneDevice(TorchDispatchMode):
    """Fails any operator whose tensor arguments lie on more than one device (0-d tensors
    aside: a CPU scalar may meet CUDA tensors)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        devices = {t.device for t in tree_leaves((args, kwargs))
                   if isinstance(t, torch.Tensor) and t.dim() > 0}
        assert len(devices) <= 1, f'{func} mixes devices {devices}'
        return func(*args, **kwargs)


@pytest.mark.parametrize('name', CASES)
def test_backbone_trains_and_infers_on_its_inputs_device(name):
    factory, shape = CASES[name]
    cpu_model = factory()
    with torch.no_grad():
        expected = [o.shape for o in cpu_model.eval()(torch.zeros(shape))]
    model = cpu_model.train().to('meta')
    with OneDevice():
        outputs = model(torch.empty(shape, device='meta'))
        sum(o.sum() for o in outputs).backward()
        assert all(p.grad is not None and p.grad.is_meta for p in model.parameters()
                   if p.requires_grad)
        with torch.no_grad():
            outputs = model.eval()(torch.empty(shape, device='meta'))
    assert [o.shape for o in outputs] == expected and all(o.is_meta for o in outputs)


def test_neck_on_its_inputs_device():
    backbone = TNT(arch='tiny', window_size=4, global_attn_indices=(5, 11)).to('meta')
    neck = SimpleFeaturePyramid(192, out_channels=[48, 96, 192, 192]).to('meta')
    with OneDevice():
        outputs = neck(backbone(torch.empty(2, 3, 96, 128, device='meta')))
        sum(o.sum() for o in outputs).backward()
    assert [tuple(o.shape) for o in outputs] == [(2, 48, 24, 32), (2, 96, 12, 16),
                                                  (2, 192, 6, 8), (2, 192, 3, 4)]
    assert all(p.grad is not None for p in neck.parameters())
