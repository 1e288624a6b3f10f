"""What both backbones share: train-mode handling, the input check, the from-scratch init."""
import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from torch.nn.modules.batchnorm import _BatchNorm


class FreezeMixin:
    """``train(mode)`` that re-applies ``_freeze_stages()`` and, with ``norm_eval``, keeps
    BatchNorm layers in eval mode, as mmdet's backbones do (``model.train()`` would undo both)."""

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def check_image_batch(x, in_channels, name):
    """Raises a clear error unless ``x`` is a floating (B, in_channels, H, W) tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ValueError(f'{name} expects a 4-D (B, C, H, W) tensor, got '
                         f'{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x)}')
    if not x.is_floating_point():
        raise TypeError(f'{name} expects a floating-point image tensor, got {x.dtype}; '
                        f'normalise the image first')
    if x.shape[1] != in_channels:
        raise ValueError(f'{name} was built for {in_channels} input channels, got an input '
                         f'with {x.shape[1]} (shape {tuple(x.shape)})')


def init_linear_and_norm(m):
    """timm's transformer init: truncated-normal (std 0.02) Linear weights, zero biases, unit
    LayerNorms. Returns whether ``m`` was one of these."""
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    else:
        return False
    return True
