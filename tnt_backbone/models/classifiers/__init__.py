from .batch_augments import CutMix, Mixup, RandomBatchAugment
from .data_preprocessor import ClsDataPreprocessor
from .image_classifier import ImageClassifier
from .linear_head import LinearClsHead, soft_cross_entropy

__all__ = ['CutMix', 'Mixup', 'RandomBatchAugment', 'ClsDataPreprocessor', 'ImageClassifier',
           'LinearClsHead', 'soft_cross_entropy']
