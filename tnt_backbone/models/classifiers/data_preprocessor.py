"""Data preprocessor of the classifier: normalisation plus batch augments in training."""
import torch
import torch.nn.functional as F
from mmengine.model import ImgDataPreprocessor

from ...registry import MODELS
from .batch_augments import RandomBatchAugment


@MODELS.register_module()
class ClsDataPreprocessor(ImgDataPreprocessor):
    """Stacks and normalises images; in training mixes them with the batch augments.

    With batch augments, each data sample gets ``gt_score``: its (num_classes,) soft target
    after mixing, which the head uses instead of ``gt_label``.

    Args:
        num_classes (int | None): Needed for batch augments (one-hot targets).
        batch_augments (dict | None): ``dict(augments=[...], probs=None)`` for
            :class:`RandomBatchAugment`. Defaults to None.
        **kwargs: :class:`mmengine.model.ImgDataPreprocessor`'s (``mean``, ``std``,
            ``bgr_to_rgb``, ``pad_size_divisor``, ...).
    """

    def __init__(self, num_classes=None, batch_augments=None, **kwargs):
        super().__init__(**kwargs)
        if batch_augments and not num_classes:
            raise ValueError('batch augments (Mixup/CutMix) need num_classes')
        self.num_classes = num_classes
        self.batch_augments = RandomBatchAugment(**batch_augments) if batch_augments else None

    def forward(self, data, training=False):
        """data: dict(inputs=list of (C, H, W), data_samples=list). Returns the same keys."""
        data = super().forward(data, training)
        samples = data['data_samples']
        if training and self.batch_augments is not None and samples:
            labels = torch.stack([s.gt_label for s in samples]).to(data['inputs'].device)
            targets = F.one_hot(labels, self.num_classes).float()
            data['inputs'], targets = self.batch_augments(data['inputs'], targets)
            for sample, target in zip(samples, targets):
                sample.gt_score = target
        return data
