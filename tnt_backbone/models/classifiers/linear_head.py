"""Linear classification head with a label-smoothed soft-target cross-entropy loss."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmengine.structures import BaseDataElement

from ...registry import MODELS


def soft_cross_entropy(logits, targets):
    """Mean over the batch of ``-sum_c targets * log_softmax(logits)``; both (B, C)."""
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


@MODELS.register_module()
class LinearClsHead(BaseModule):
    """Linear classifier on the backbone's last output: (B, in_channels) -> (B, num_classes).

    The loss is the cross-entropy against soft targets smoothed as
    ``(1 - label_smoothing) * t + label_smoothing / num_classes``, where ``t`` is the sample's
    ``gt_score`` (mixed by Mixup/CutMix) if present, else the one-hot ``gt_label``.

    Args:
        num_classes (int): Number of classes.
        in_channels (int): Feature width (TNT-Ti 192, S 384, B 640).
        label_smoothing (float): Defaults to 0.
        loss_weight (float): Defaults to 1.
        init_cfg (dict | None): ``dict(type='Pretrained', checkpoint=PATH)`` loads the classifier
            of a TNT checkpoint of any source the converter knows (ours, timm, official,
            mmpretrain). Defaults to None: truncated normal (std 0.02), zero bias.
    """

    def __init__(self, num_classes, in_channels, label_smoothing=0., loss_weight=1.,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f'label_smoothing must be in [0, 1), got {label_smoothing}')
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing
        self.loss_weight = loss_weight
        self.fc = nn.Linear(in_channels, num_classes)

    def init_weights(self):
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self._load_pretrained(self.init_cfg['checkpoint'])
            self._is_init = True  # keep mmengine from re-applying init_cfg
            return
        super().init_weights()
        if self.init_cfg is None:
            trunc_normal_(self.fc.weight, std=.02)
            nn.init.zeros_(self.fc.bias)

    def _load_pretrained(self, filename):
        from ...checkpoint import convert_tnt_checkpoint
        from ...engine import load_state_dict_from
        sd, _, _ = convert_tnt_checkpoint(
            load_state_dict_from(filename, ema=self.init_cfg.get('ema', True)))
        if 'head.fc.weight' not in sd:
            raise ValueError(f'{filename} holds no classifier head (no head.fc / head weights)')
        weight, bias = sd['head.fc.weight'], sd['head.fc.bias']
        if weight.shape != self.fc.weight.shape:
            raise ValueError(f'the head in {filename} maps {weight.shape[1]} features to '
                             f'{weight.shape[0]} classes, this head {self.fc.in_features} to '
                             f'{self.num_classes}; drop head.init_cfg to train a new head')
        self.fc.load_state_dict(dict(weight=weight, bias=bias))

    def forward(self, feats):
        """feats: tuple of (B, in_channels) features, the last is used. Returns (B, C) logits."""
        return self.fc(feats[-1])

    def loss(self, feats, data_samples):
        logits = self(feats)
        if 'gt_score' in data_samples[0]:
            targets = torch.stack([s.gt_score for s in data_samples])
        else:
            labels = torch.stack([s.gt_label for s in data_samples]).to(logits.device)
            targets = F.one_hot(labels, self.num_classes).to(logits.dtype)
        targets = targets * (1 - self.label_smoothing) + self.label_smoothing / self.num_classes
        return dict(loss=self.loss_weight * soft_cross_entropy(logits, targets))

    def predict(self, feats, data_samples=None):
        """Returns data samples with ``pred_score`` (softmax, (C,)) and ``pred_label``."""
        scores = F.softmax(self(feats), dim=-1).detach()
        if data_samples is None:
            data_samples = [BaseDataElement() for _ in range(scores.shape[0])]
        for sample, score in zip(data_samples, scores):
            sample.pred_score = score
            sample.pred_label = score.argmax()
        return data_samples
