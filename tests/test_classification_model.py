"""Classifier model pieces: Mixup/CutMix, head loss, data preprocessor, accuracy metric."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement

from tnt_backbone.evaluation import Accuracy, topk_accuracy
from tnt_backbone.models.classifiers import (ClsDataPreprocessor, CutMix, ImageClassifier,
                                             LinearClsHead, Mixup, RandomBatchAugment)


@pytest.fixture(autouse=True)
def tnt_scope():
    """The classifier builds its parts by unscoped names, under the default scope our
    classification configs set (tests of other tasks leave theirs behind)."""
    init_default_scope('tnt_backbone')


TINY = dict(word_dim=8, sentence_dim=48, depth=2, word_heads=2, sentence_heads=2, mlp_ratio=2.)


def labelled_batch(b=6, size=(20, 24)):
    """Image i is filled with the value i and has label i: pixel values reveal the mixture."""
    inputs = torch.arange(b, dtype=torch.float).view(b, 1, 1, 1).expand(b, 3, *size).clone()
    return inputs, torch.eye(b)


@pytest.mark.parametrize('seed', range(20))
def test_mixup_label_mixture_matches_pixels(seed):
    np.random.seed(seed)
    torch.manual_seed(seed)
    inputs, targets = labelled_batch()
    mixed, soft = Mixup(alpha=0.8)(inputs, targets)
    assert torch.allclose(soft.sum(1), torch.ones(6))
    # every pixel of image i is sum_c weight_c * c
    expected = (soft * torch.arange(6.)).sum(1).view(6, 1, 1, 1)
    assert torch.allclose(mixed, expected.expand_as(mixed), atol=1e-5)


def test_mixup_uses_the_given_lambda():
    inputs, targets = labelled_batch(2)
    mixed, soft = Mixup(alpha=1.).mix(inputs, targets, 0.3, torch.tensor([1, 0]))
    assert torch.allclose(soft, torch.tensor([[0.3, 0.7], [0.7, 0.3]]))
    assert torch.allclose(mixed[0], torch.full_like(mixed[0], 0.7))


@pytest.mark.parametrize('seed', range(30))
def test_cutmix_label_weight_is_the_pasted_area(seed):
    np.random.seed(seed)
    torch.manual_seed(seed)
    inputs, targets = labelled_batch()
    mixed, soft = CutMix(alpha=1.)(inputs, targets)
    for i in range(6):
        values = mixed[i, 0]
        for c in range(6):
            # the box is clipped at the border: the weight is its real area, not 1 - lambda
            assert math.isclose(soft[i, c].item(), (values == c).float().mean().item(),
                                abs_tol=1e-6)


def test_random_batch_augment_probabilities():
    inputs, targets = labelled_batch()
    none = RandomBatchAugment([dict(type='Mixup', alpha=1.)], probs=[0.])
    assert none(inputs, targets)[1] is targets
    with pytest.raises(ValueError, match='probs'):
        RandomBatchAugment([dict(type='Mixup', alpha=1.)], probs=[0.7, 0.7])
    with pytest.raises(ValueError, match='alpha'):
        Mixup(alpha=0)


def samples_with_labels(labels):
    return [BaseDataElement(gt_label=torch.tensor(label)) for label in labels]


def test_label_smoothing_loss_equals_torch_cross_entropy():
    torch.manual_seed(0)
    head = LinearClsHead(num_classes=4, in_channels=8, label_smoothing=0.1)
    feats = (torch.randn(5, 8), )
    labels = [0, 3, 1, 1, 2]
    loss = head.loss(feats, samples_with_labels(labels))['loss']
    expected = F.cross_entropy(head(feats), torch.tensor(labels), label_smoothing=0.1)
    assert torch.allclose(loss, expected)
    # soft targets (from Mixup) replace the labels
    samples = samples_with_labels(labels)
    for s in samples:
        s.gt_score = torch.full((4, ), 0.25)
    uniform = head.loss(feats, samples)['loss']
    assert torch.allclose(uniform, -F.log_softmax(head(feats), -1).mean(1).mean())


def test_accuracy_equals_hand_count():
    scores = torch.tensor([[0.1, 0.6, 0.2, 0.1],    # label 1: top-1 hit
                           [0.5, 0.1, 0.3, 0.1],    # label 2: 2nd -> top-2 hit
                           [0.2, 0.2, 0.1, 0.5],    # label 3: top-1 hit
                           [0.4, 0.3, 0.2, 0.1],    # label 3: last -> miss
                           [0.1, 0.2, 0.3, 0.4]])   # label 2: 2nd -> top-2 hit
    labels = torch.tensor([1, 2, 3, 3, 2])
    assert topk_accuracy(scores, labels, (1, 2, 4)) == pytest.approx([40., 80., 100.])
    metric = Accuracy(topk=(1, 2))
    metric.process({}, [dict(pred_score=s, gt_label=torch.tensor(int(l)))
                        for s, l in zip(scores, labels)])
    assert metric.evaluate(5) == pytest.approx({'accuracy/top1': 40., 'accuracy/top2': 80.})
    with pytest.raises(ValueError, match='top-5 accuracy needs more than 4 classes'):
        topk_accuracy(scores, labels, (1, 5))


def test_preprocessor_normalises_and_mixes_in_training_only():
    pre = ClsDataPreprocessor(num_classes=3, mean=[127.5] * 3, std=[127.5] * 3, bgr_to_rgb=True,
                              batch_augments=dict(augments=[dict(type='Mixup', alpha=1.)]))
    img = torch.zeros(3, 4, 4, dtype=torch.uint8)
    img[0] = 255  # blue in BGR
    data = dict(inputs=[img, img.clone()], data_samples=samples_with_labels([0, 2]))
    out = pre(data, training=False)
    assert torch.equal(out['inputs'][0, 2], torch.ones(4, 4))  # blue is channel 2 in RGB
    assert torch.equal(out['inputs'][0, 0], -torch.ones(4, 4))
    assert 'gt_score' not in out['data_samples'][0]
    data = dict(inputs=[img, img.clone()], data_samples=samples_with_labels([0, 2]))
    out = pre(data, training=True)
    score = out['data_samples'][0].gt_score
    assert score.shape == (3, ) and score.sum() == pytest.approx(1.) and score[1] == 0
    with pytest.raises(ValueError, match='num_classes'):
        ClsDataPreprocessor(batch_augments=dict(augments=[dict(type='Mixup', alpha=1.)]))


def tiny_classifier(**head):
    return ImageClassifier(
        backbone=dict(type='TNT', arch=TINY, img_size=32, out_type='cls_token',
                      out_indices=(-1, )),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=48, **head),
        data_preprocessor=dict(mean=[127.5] * 3, std=[127.5] * 3))


def test_classifier_modes():
    model = tiny_classifier()
    model.init_weights()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 3)
    samples = model(x, samples_with_labels([0, 1]), mode='predict')
    assert samples[0].pred_score.sum().item() == pytest.approx(1.)
    assert samples[1].pred_label == samples[1].pred_score.argmax()
    assert model(x, samples_with_labels([0, 1]), mode='loss')['loss'].ndim == 0
    with pytest.raises(ValueError, match='mode'):
        model(x, mode='train')
    # the names the TNT checkpoint loader relies on
    keys = model.state_dict().keys()
    assert 'head.fc.weight' in keys and 'backbone.cls_token' in keys


def test_head_loads_the_classifier_of_a_checkpoint(tmp_path):
    source = tiny_classifier()
    source.init_weights()
    path = str(tmp_path / 'cls.pth')
    torch.save(dict(state_dict=source.state_dict()), path)
    model = tiny_classifier(init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    assert torch.equal(model.head.fc.weight, source.head.fc.weight)
    assert torch.equal(model.head.fc.bias, source.head.fc.bias)
    wrong = LinearClsHead(num_classes=7, in_channels=48,
                          init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='3 classes, this head 48 to 7'):
        wrong.init_weights()
