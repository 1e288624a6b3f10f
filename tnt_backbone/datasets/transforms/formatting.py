"""Packing of a transformed image and its label into the classifier's inputs."""
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from ...registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackClsInputs(BaseTransform):
    """Packs ``img`` and ``gt_label`` for :class:`~tnt_backbone.models.ImageClassifier`.

    Returns ``dict(inputs, data_samples)``: ``inputs`` is a (C, H, W) tensor of the image's dtype
    (channel order as loaded), ``data_samples`` a :class:`BaseDataElement` with ``gt_label`` (a
    0-dim long tensor, when the sample has a label) and the ``meta_keys`` as metainfo.

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo when present.
            Defaults to ('img_path', 'ori_shape', 'img_shape').
    """

    def __init__(self, meta_keys=('img_path', 'ori_shape', 'img_shape')):
        self.meta_keys = tuple(meta_keys)

    def transform(self, results):
        img = results['img']
        if img.ndim == 2:
            img = img[..., None]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if 'gt_label' in results:
            sample.gt_label = torch.tensor(int(results['gt_label']), dtype=torch.long)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self):
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
