import mmcv.transforms  # noqa: F401  (registers LoadImageFromFile, Resize, ... used by our configs)

from .imagenet import ImageNet
from .repeat_aug_sampler import RepeatAugSampler
from .transforms import PackClsInputs, RandAugment, RandomErasing, RandomResizedCrop

__all__ = ['ImageNet', 'RepeatAugSampler', 'PackClsInputs', 'RandAugment', 'RandomErasing',
           'RandomResizedCrop']
