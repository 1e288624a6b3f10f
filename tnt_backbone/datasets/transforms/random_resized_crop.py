"""RandomResizedCrop: the Inception-style scale augmentation of ImageNet training."""
import math

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomResizedCrop(BaseTransform):
    """Crops a region of random area and aspect ratio and resizes it to ``scale``.

    The region covers a fraction of the image area drawn uniformly from ``crop_ratio_range``
    and has a width/height ratio drawn log-uniformly from ``aspect_ratio_range``. When
    ``max_attempts`` draws do not fit in the image, the largest central crop whose aspect ratio
    is clamped to the range is taken instead.

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``.

    Args:
        scale (int | tuple[int, int]): Output size, ``(w, h)`` as in mmcv's ``Resize``.
        crop_ratio_range (tuple[float, float]): Area fraction bounds. Defaults to (0.08, 1.0).
        aspect_ratio_range (tuple[float, float]): Width/height bounds. Defaults to (3/4, 4/3).
        max_attempts (int): Draws before the central fallback. Defaults to 10.
        interpolation (str): mmcv interpolation of the resize. Defaults to 'bicubic'.
        backend (str): 'cv2' or 'pillow'. Defaults to 'cv2'.
    """

    def __init__(self, scale, crop_ratio_range=(0.08, 1.0), aspect_ratio_range=(3. / 4., 4. / 3.),
                 max_attempts=10, interpolation='bicubic', backend='cv2'):
        self.scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
        for name, (lo, hi) in (('crop_ratio_range', crop_ratio_range),
                               ('aspect_ratio_range', aspect_ratio_range)):
            if not 0 < lo <= hi:
                raise ValueError(f'{name} must be (low, high) with 0 < low <= high, '
                                 f'got {(lo, hi)}')
        if crop_ratio_range[1] > 1:
            raise ValueError(f'crop_ratio_range may not exceed 1, got {crop_ratio_range}')
        self.crop_ratio_range = tuple(crop_ratio_range)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_attempts = max_attempts
        self.interpolation = interpolation
        self.backend = backend

    def crop_box(self, h, w):
        """Draws a crop of an (h, w) image: (top, left, crop_h, crop_w)."""
        log_ratio = np.log(self.aspect_ratio_range)
        for _ in range(self.max_attempts):
            area = h * w * np.random.uniform(*self.crop_ratio_range)
            ratio = math.exp(np.random.uniform(*log_ratio))
            crop_w = int(round(math.sqrt(area * ratio)))
            crop_h = int(round(math.sqrt(area / ratio)))
            if 0 < crop_w <= w and 0 < crop_h <= h:
                return (np.random.randint(0, h - crop_h + 1), np.random.randint(0, w - crop_w + 1),
                        crop_h, crop_w)
        lo, hi = self.aspect_ratio_range
        crop_w, crop_h = w, h
        if w / h < lo:
            crop_h = int(round(w / lo))
        elif w / h > hi:
            crop_w = int(round(h * hi))
        return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w

    def transform(self, results):
        img = results['img']
        top, left, crop_h, crop_w = self.crop_box(*img.shape[:2])
        img = mmcv.imresize(img[top:top + crop_h, left:left + crop_w], self.scale,
                            interpolation=self.interpolation, backend=self.backend)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(scale={self.scale}, crop_ratio_range='
                f'{self.crop_ratio_range}, aspect_ratio_range={self.aspect_ratio_range}, '
                f'interpolation={self.interpolation})')
