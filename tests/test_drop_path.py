"""DropPathAdd: the residual add with mmcv's DropPath, fused."""
import pytest
import torch
from mmcv.cnn.bricks import DropPath

from tnt_backbone.models.layers.drop_path import DropPathAdd


@pytest.mark.parametrize('shape', [(64, 16, 24), (3, 5), (7, 2, 3, 4)])
def test_equals_mmcv_drop_path_then_add(shape):
    """Same random draw, same values and gradients; samples are dropped as a whole."""
    shortcut = torch.randn(shape, requires_grad=True)
    x = torch.randn(shape, requires_grad=True)
    fused, reference = DropPathAdd(0.3).train(), DropPath(0.3).train()
    torch.manual_seed(1)
    out = fused(shortcut, x)
    torch.manual_seed(1)
    expect = shortcut + reference(x)
    torch.testing.assert_close(out, expect)
    weights = torch.randn(shape)
    grads = torch.autograd.grad((out * weights).sum(), (shortcut, x))
    expect_grads = torch.autograd.grad((expect * weights).sum(), (shortcut, x))
    torch.testing.assert_close(grads, expect_grads)
    branch = (out - shortcut).detach().flatten(1)
    dropped = (branch == 0).all(1)
    if shape[0] == 64:  # some of each, kept ones scaled by 1/0.7
        assert 0 < dropped.sum() < 64
    torch.testing.assert_close(branch[~dropped], x.detach().flatten(1)[~dropped] / 0.7)


def test_eval_and_zero_rate_are_a_plain_add():
    shortcut, x = torch.randn(8, 4), torch.randn(8, 4)
    torch.testing.assert_close(DropPathAdd(0.5).eval()(shortcut, x), shortcut + x)
    torch.testing.assert_close(DropPathAdd(0.).train()(shortcut, x), shortcut + x)


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match=r'drop_prob must be in \[0, 1\), got 1.0'):
        DropPathAdd(1.0)
