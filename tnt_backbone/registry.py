"""Registries of the ``tnt_backbone`` scope.

Each is a child of mmengine's root registry, so configs of any OpenMMLab repo (whose own
registries are children of the same root) can name ``type='tnt_backbone.TNT'``. The
``locations`` make such names resolvable even before ``tnt_backbone`` is imported.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry


def _child(name, parent, location):
    return Registry(name, parent=parent, scope='tnt_backbone',
                    locations=[f'tnt_backbone.{location}'])


MODELS = _child('model', MMENGINE_MODELS, 'models')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, 'engine')
HOOKS = _child('hook', MMENGINE_HOOKS, 'engine')
DATASETS = _child('dataset', MMENGINE_DATASETS, 'datasets')
DATA_SAMPLERS = _child('data sampler', MMENGINE_DATA_SAMPLERS, 'datasets')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'datasets')
METRICS = _child('metric', MMENGINE_METRICS, 'evaluation')
