"""RandAugment (Cubuk et al., 2020) with the 'increasing' op set of DeiT / TNT training.

Each op maps a magnitude fraction ``f`` in [0, 1] (magnitude / max_magnitude) to its strength,
growing with ``f`` for every op: rotate up to 30 degrees, shear up to 0.3, translate up to 45 %
of the side, colour/contrast/brightness/sharpness factors 1 +- 0.9 f, posterize to 4 - 4 f
bits, solarize above 256 (1 - f), solarize-add of 110 f. Signed ops pick a random direction.
"""
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from ...registry import TRANSFORMS


def _signed(value):
    return value if np.random.rand() < 0.5 else -value


def _solarize_add(img, f):
    shifted = np.clip(img.astype(np.int16) + int(110 * f), 0, 255).astype(img.dtype)
    return np.where(img < 128, shifted, img)


def _geometric(fn, params):
    return lambda img, f, aug: fn(img, border_value=aug.fill, interpolation=aug.interpolation,
                                  **params(img, f))


def _enhance(fn):
    return lambda img, f, aug: fn(img, 1. + _signed(0.9 * f))


OPS = {
    'AutoContrast': lambda img, f, aug: mmcv.auto_contrast(img),
    'Equalize': lambda img, f, aug: mmcv.imequalize(img),
    'Invert': lambda img, f, aug: mmcv.iminvert(img),
    'Rotate': _geometric(mmcv.imrotate, lambda img, f: dict(angle=_signed(30. * f))),
    'Posterize': lambda img, f, aug: mmcv.posterize(img, 4 - int(4 * f)),
    'Solarize': lambda img, f, aug: mmcv.solarize(img, thr=256 * (1. - f)),
    'SolarizeAdd': lambda img, f, aug: _solarize_add(img, f),
    'Color': _enhance(mmcv.adjust_color),
    'Contrast': _enhance(mmcv.adjust_contrast),
    'Brightness': _enhance(mmcv.adjust_brightness),
    'Sharpness': _enhance(mmcv.adjust_sharpness),
    'ShearX': _geometric(mmcv.imshear, lambda img, f: dict(
        magnitude=_signed(0.3 * f), direction='horizontal')),
    'ShearY': _geometric(mmcv.imshear, lambda img, f: dict(
        magnitude=_signed(0.3 * f), direction='vertical')),
    'TranslateX': _geometric(mmcv.imtranslate, lambda img, f: dict(
        offset=_signed(0.45 * f * img.shape[1]), direction='horizontal')),
    'TranslateY': _geometric(mmcv.imtranslate, lambda img, f: dict(
        offset=_signed(0.45 * f * img.shape[0]), direction='vertical')),
}


@TRANSFORMS.register_module()
class RandAugment(BaseTransform):
    """Applies ``num_ops`` ops drawn at random from ``ops``, each with probability ``op_prob``.

    Every applied op gets a magnitude drawn from N(``magnitude``, ``magnitude_std``) clipped to
    [0, ``max_magnitude``] (timm's ``rand-m9-mstd0.5-inc1`` with the defaults).

    Required keys: ``img`` (uint8, H x W x 3). Modified keys: ``img``.

    Args:
        num_ops (int): Ops per image. Defaults to 2.
        magnitude (float): Mean magnitude. Defaults to 9.
        magnitude_std (float): Std of the magnitude; 0 fixes it. Defaults to 0.5.
        max_magnitude (float): Magnitude of the strongest setting of each op. Defaults to 10.
        op_prob (float): Probability that a drawn op is applied. Defaults to 0.5.
        ops (Sequence[str]): Names from :data:`OPS`. Defaults to all of them.
        fill (int | tuple[int]): Value of pixels uncovered by geometric ops. Defaults to 128
            (the normalisation mean).
        interpolation (str): Of geometric ops. Defaults to 'bicubic'.
    """

    def __init__(self, num_ops=2, magnitude=9., magnitude_std=0.5, max_magnitude=10.,
                 op_prob=0.5, ops=tuple(OPS), fill=128, interpolation='bicubic'):
        unknown = set(ops) - set(OPS)
        if unknown:
            raise ValueError(f'unknown RandAugment ops {sorted(unknown)}; known: {sorted(OPS)}')
        if not 0 <= magnitude <= max_magnitude:
            raise ValueError(f'magnitude must be in [0, {max_magnitude}], got {magnitude}')
        self.num_ops = num_ops
        self.magnitude = magnitude
        self.magnitude_std = magnitude_std
        self.max_magnitude = max_magnitude
        self.op_prob = op_prob
        self.ops = tuple(ops)
        self.fill = fill
        self.interpolation = interpolation

    def transform(self, results):
        img = results['img']
        for name in np.random.choice(self.ops, self.num_ops):
            if np.random.rand() >= self.op_prob:
                continue
            m = self.magnitude
            if self.magnitude_std > 0:
                m = np.clip(np.random.normal(m, self.magnitude_std), 0, self.max_magnitude)
            img = OPS[name](img, m / self.max_magnitude, self)
        results['img'] = img.astype(np.uint8, copy=False)
        return results

    def __repr__(self):
        return (f'{self.__class__.__name__}(num_ops={self.num_ops}, magnitude={self.magnitude}, '
                f'magnitude_std={self.magnitude_std}, ops={self.ops})')
