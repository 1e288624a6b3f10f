from .formatting import PackClsInputs
from .rand_augment import RandAugment
from .random_erasing import RandomErasing
from .random_resized_crop import RandomResizedCrop

__all__ = ['PackClsInputs', 'RandAugment', 'RandomErasing', 'RandomResizedCrop']
