"""Mixup and CutMix: batch augmentations that mix images and their soft targets."""
import math

import numpy as np
import torch

from ...registry import MODELS


@MODELS.register_module()
class Mixup:
    """Mixup (Zhang et al., 2018): ``x' = lam x + (1 - lam) x[perm]``, same for targets.

    ``lam ~ Beta(alpha, alpha)`` and ``perm`` is a random permutation of the batch.

    Args:
        alpha (float): Beta distribution parameter, > 0.
    """

    def __init__(self, alpha):
        if alpha <= 0:
            raise ValueError(f'{self.__class__.__name__} alpha must be > 0, got {alpha}')
        self.alpha = alpha

    def __call__(self, inputs, targets):
        """inputs: (B, C, H, W) float; targets: (B, num_classes) one-hot or soft."""
        lam = float(np.random.beta(self.alpha, self.alpha))
        perm = torch.randperm(inputs.shape[0], device=inputs.device)
        return self.mix(inputs, targets, lam, perm)

    def mix(self, inputs, targets, lam, perm):
        """Mixes each sample with ``perm``'s at weight ``lam``; returns (inputs, targets)."""
        return (lam * inputs + (1 - lam) * inputs[perm],
                lam * targets + (1 - lam) * targets[perm])


@MODELS.register_module()
class CutMix(Mixup):
    """CutMix (Yun et al., 2019): pastes a box of ``x[perm]`` into each image.

    The box covers about ``1 - lam`` of the image, centred uniformly at random and clipped at the
    borders; the targets are mixed with the area fraction the box really has after clipping.

    Args:
        alpha (float): Beta distribution parameter, > 0.
    """

    def mix(self, inputs, targets, lam, perm):
        h, w = inputs.shape[-2:]
        cut = math.sqrt(1. - lam)
        cut_h, cut_w = int(h * cut), int(w * cut)
        cy, cx = np.random.randint(h), np.random.randint(w)
        y0, y1 = np.clip([cy - cut_h // 2, cy - cut_h // 2 + cut_h], 0, h)
        x0, x1 = np.clip([cx - cut_w // 2, cx - cut_w // 2 + cut_w], 0, w)
        inputs = inputs.clone()
        inputs[..., y0:y1, x0:x1] = inputs[perm][..., y0:y1, x0:x1]
        lam = 1. - (y1 - y0) * (x1 - x0) / (h * w)
        return inputs, lam * targets + (1 - lam) * targets[perm]


class RandomBatchAugment:
    """Applies one of ``augments`` per batch, drawn with ``probs``.

    Args:
        augments (list[dict | callable]): Batch augments (configs in ``MODELS``).
        probs (list[float] | None): Probability of each; a remainder below 1 leaves the batch
            unchanged. Defaults to None (uniform, always one).
    """

    def __init__(self, augments, probs=None):
        self.augments = [MODELS.build(a) if isinstance(a, dict) else a for a in augments]
        if not self.augments:
            raise ValueError('RandomBatchAugment needs at least one augment')
        probs = [1. / len(self.augments)] * len(self.augments) if probs is None else list(probs)
        if len(probs) != len(self.augments) or min(probs) < 0 or sum(probs) > 1 + 1e-6:
            raise ValueError(f'probs must be one non-negative value per augment summing to at '
                             f'most 1, got {probs} for {len(self.augments)} augments')
        self.probs = probs + [max(0., 1. - sum(probs))]

    def __call__(self, inputs, targets):
        """inputs: (B, C, H, W); targets: (B, num_classes). Returns both, augmented."""
        i = np.random.choice(len(self.probs), p=np.asarray(self.probs) / sum(self.probs))
        if i == len(self.augments):
            return inputs, targets
        return self.augments[i](inputs, targets)
