"""Image classifier: a backbone and a head, trained with mmengine's Runner."""
from mmengine.model import BaseModel

from ...registry import MODELS


@MODELS.register_module()
class ImageClassifier(BaseModel):
    """Backbone -> head. The module names ``backbone`` and ``head.fc`` are the checkpoint keys
    that the TNT loader reads (``backbone.*``, ``head.fc.*``).

    Args:
        backbone (dict): Backbone config, e.g. ``TNT`` with ``out_type='cls_token'``.
        head (dict): Head config, e.g. :class:`LinearClsHead`.
        train_cfg (dict | None): ``dict(augments=[dict(type='Mixup', alpha=0.8), ...],
            probs=None)``: batch augments applied by the data preprocessor in training.
        data_preprocessor (dict | None): :class:`ClsDataPreprocessor` args (``mean``, ``std``,
            ``bgr_to_rgb``); ``num_classes`` is taken from the head.
        init_cfg (dict | None): Defaults to None.
    """

    def __init__(self, backbone, head, train_cfg=None, data_preprocessor=None, init_cfg=None):
        data_preprocessor = dict(data_preprocessor or {})
        data_preprocessor.setdefault('type', 'tnt_backbone.ClsDataPreprocessor')
        data_preprocessor.setdefault('num_classes', head.get('num_classes'))
        if train_cfg and train_cfg.get('augments'):
            data_preprocessor['batch_augments'] = dict(train_cfg)
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)

    def extract_feat(self, inputs):
        """inputs: (B, 3, H, W) normalised. Returns the backbone's tuple of features."""
        return self.backbone(inputs)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        """'tensor': (B, C) logits; 'loss': dict of losses; 'predict': data samples with
        ``pred_score`` and ``pred_label``."""
        feats = self.extract_feat(inputs)
        if mode == 'tensor':
            return self.head(feats)
        if mode == 'loss':
            return self.head.loss(feats, data_samples)
        if mode == 'predict':
            return self.head.predict(feats, data_samples)
        raise ValueError(f"mode must be 'tensor', 'loss' or 'predict', got {mode!r}")
