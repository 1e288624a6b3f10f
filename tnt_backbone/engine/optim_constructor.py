"""Optimizer constructor with layer-wise learning-rate decay for TNT backbones."""
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise lr decay and no weight decay on norms, biases and position embeddings.

    The backbone (``model.backbone``, or the model itself) says each parameter's depth through
    ``get_layer_depth(name) -> (layer_id, num_layers)``; the lr of that parameter is scaled by
    ``layer_decay_rate ** (num_layers - 1 - layer_id)``. Parameters outside the backbone (necks,
    heads) keep the base lr. Names returned by the backbone's ``no_weight_decay()``, 1-D
    parameters (norm weights) and biases get weight decay 0.

    ``paramwise_cfg`` keys:
        layer_decay_rate (float): Defaults to 1.0 (no decay).
        decay_norm_and_bias (bool): Keep weight decay on 1-D parameters. Defaults to False.
    """

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        # mmengine skips add_params when paramwise_cfg is empty; the defaults still apply
        super().__init__(optim_wrapper_cfg, paramwise_cfg or dict(layer_decay_rate=1.0))

    def add_params(self, params, module, prefix='', **kwargs):
        if is_model_wrapper(module):
            module = module.module
        rate = self.paramwise_cfg.get('layer_decay_rate', 1.0)
        decay_1d = self.paramwise_cfg.get('decay_norm_and_bias', False)
        backbone, bb_prefix = (module.backbone, 'backbone.') if hasattr(module, 'backbone') \
            else (module, '')
        depth_of = getattr(backbone, 'get_layer_depth', None)
        no_wd = set(backbone.no_weight_decay()) if hasattr(backbone, 'no_weight_decay') else set()
        base_wd = self.base_wd or 0.
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            in_backbone = name.startswith(bb_prefix)
            bare = name[len(bb_prefix):] if in_backbone else name
            scale = 1.0
            if in_backbone and depth_of is not None:
                layer_id, num_layers = depth_of(bare)
                scale = rate ** (num_layers - 1 - layer_id)
            no_decay = bare in no_wd or (not decay_1d and (param.ndim == 1
                                                          or name.endswith('.bias')))
            key = (scale, no_decay)
            if key not in groups:
                groups[key] = dict(params=[], lr=self.base_lr * scale, lr_scale=scale,
                                   weight_decay=0. if no_decay else base_wd)
            groups[key]['params'].append(param)
        params.extend(groups.values())
