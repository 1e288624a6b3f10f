"""Random erasing (Zhong et al., 2020) with per-pixel noise, as in DeiT's recipe."""
import math

import numpy as np
from mmcv.transforms import BaseTransform

from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomErasing(BaseTransform):
    """With probability ``prob``, fills one random rectangle of the image with Gaussian noise.

    Runs on the uint8 image before normalisation: noise ``N(mean, std)`` per pixel and channel,
    clipped to [0, 255], is DeiT's N(0, 1) erasing in normalised units when ``mean``/``std`` are
    the data preprocessor's (up to the clipping).

    Required keys: ``img``. Modified keys: ``img``.

    Args:
        prob (float): Probability of erasing. Defaults to 0.25.
        area_ratio_range (tuple[float, float]): Rectangle area as a fraction of the image.
            Defaults to (0.02, 1/3).
        aspect_ratio_range (tuple[float, float]): Rectangle height/width, drawn log-uniformly.
            Defaults to (0.3, 1/0.3).
        mean (float): Noise mean in pixel units. Defaults to 127.5.
        std (float): Noise std in pixel units. Defaults to 127.5.
        max_attempts (int): Draws of a rectangle that fits before giving up. Defaults to 10.
    """

    def __init__(self, prob=0.25, area_ratio_range=(0.02, 1. / 3.),
                 aspect_ratio_range=(0.3, 1. / 0.3), mean=127.5, std=127.5, max_attempts=10):
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob
        self.area_ratio_range = area_ratio_range
        self.aspect_ratio_range = aspect_ratio_range
        self.mean = mean
        self.std = std
        self.max_attempts = max_attempts

    def transform(self, results):
        if np.random.rand() >= self.prob:
            return results
        img = results['img']
        h, w = img.shape[:2]
        log_ratio = np.log(self.aspect_ratio_range)
        for _ in range(self.max_attempts):
            area = h * w * np.random.uniform(*self.area_ratio_range)
            ratio = math.exp(np.random.uniform(*log_ratio))
            eh, ew = int(round(math.sqrt(area * ratio))), int(round(math.sqrt(area / ratio)))
            if 0 < eh < h and 0 < ew < w:
                top, left = np.random.randint(0, h - eh), np.random.randint(0, w - ew)
                noise = np.random.normal(self.mean, self.std, (eh, ew) + img.shape[2:])
                img = img.copy()
                img[top:top + eh, left:left + ew] = np.clip(noise, 0, 255).astype(img.dtype)
                results['img'] = img
                break
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(prob={self.prob}, area_ratio_range='
                f'{self.area_ratio_range}, aspect_ratio_range={self.aspect_ratio_range})')
