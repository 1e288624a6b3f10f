"""Trans2SegHead: output shape, gradient to the class queries, learning through the attention
maps, and argument checks."""
import pytest
import torch
import torch.nn.functional as F

from tnt_backbone.models.decode_heads import Trans2SegHead
from tnt_backbone.registry import MODELS

BN = dict(type='BN', requires_grad=True)


def make_head(**kwargs):
    cfg = dict(type='tnt_backbone.Trans2SegHead', in_channels=24, channels=16, num_layers=2,
               num_heads=4, mlp_ratio=2., hidden_channels=8, num_convs=2, num_classes=5,
               dropout_ratio=0., norm_cfg=BN)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def test_registered_in_our_scope():
    assert MODELS.get('Trans2SegHead') is Trans2SegHead


@pytest.mark.parametrize('hw', [(5, 7), (1, 1), (8, 8)])
def test_output_is_one_logit_map_per_class_at_input_resolution(hw):
    head = make_head()
    feats = (torch.randn(3, 24, *hw), )
    assert head(feats).shape == (3, 5, *hw)


def test_uses_the_map_named_by_in_index():
    head = make_head(in_index=1).eval()
    x = torch.randn(2, 24, 4, 6)
    decoy = torch.randn(2, 7, 3, 3)  # wrong width: would fail if it were read
    assert torch.equal(head((decoy, x)), head((decoy.clone(), x)))
    assert head((decoy, x)).shape == (2, 5, 4, 6)


def test_gradient_reaches_every_class_query():
    head = make_head()
    logits = head((torch.randn(2, 24, 4, 5), ))
    F.cross_entropy(logits, torch.randint(0, 5, (2, 4, 5))).backward()
    grad = head.class_queries.grad
    assert grad is not None and grad.shape == (1, 5, 16)
    assert (grad[0].norm(dim=1) > 0).all()


def test_class_identity_comes_only_from_the_queries():
    """The mask CNN is shared by all classes: equal queries must give equal class maps."""
    head = make_head().eval()
    with torch.no_grad():
        head.class_queries.copy_(head.class_queries[:, :1].expand_as(head.class_queries))
        logits = head((torch.randn(2, 24, 4, 5), ))
    assert torch.allclose(logits, logits[:, :1].expand_as(logits), atol=1e-6)


def test_learns_a_spatial_task_through_the_attention_maps():
    """Pixels are class 1 where feature channel 0 is positive, else class 0. As the per-class
    CNN input differs between classes only through the attention maps, solving the task
    needs the queries to attend to the right pixels."""
    torch.manual_seed(0)
    head = make_head(num_classes=2)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    for _ in range(60):
        x = torch.randn(4, 24, 6, 6)
        target = (x[:, 0] > 0).long()
        loss = F.cross_entropy(head((x, )), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    x = torch.randn(8, 24, 6, 6)
    with torch.no_grad():
        acc = (head((x, )).argmax(1) == (x[:, 0] > 0)).float().mean()
    assert acc > 0.9


def test_predict_resizes_to_the_image_shape():
    head = make_head().eval()
    metas = [dict(img_shape=(61, 75), pad_shape=(61, 75))]
    with torch.no_grad():
        out = head.predict((torch.randn(1, 24, 4, 5), ), metas, test_cfg=dict())
    assert out.shape == (1, 5, 61, 75)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=[24, 24], in_index=[0, 1], input_transform='multiple_select'),
     'one stride-16 map'),
    (dict(num_convs=0), 'num_convs'),
    (dict(num_classes=2, out_channels=1), 'binary'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_head(**kwargs)
