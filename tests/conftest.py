"""Shared fixtures and helpers: the repository root, the ops a call runs, scripts under tools/
as modules, generated data."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def profiled_ops(fn):
    """The names of the ops that ``fn()`` runs, as torch.profiler records them."""
    with torch.profiler.profile() as prof:
        fn()
    return {event.key for event in prof.key_averages()}


def _load_tool(relpath):
    """Imports ``tools/<relpath>`` (a script, not a package) as a module.

    Its folder goes on ``sys.path`` first, as when the script runs, so sibling imports work.
    """
    path = osp.join(REPO_ROOT, 'tools', relpath)
    folder = osp.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = 'tools_' + relpath[:-len('.py')].replace('/', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(autouse=True)
def _visualizers_per_test():
    """Forgets the test's mmengine visualizers when it ends.

    mmdet's and mmseg's configs name theirs 'visualizer', and mmengine hands a runner the live
    instance of that name, with the save folder of the runner that made it: a test running a tool
    after another test's training would write into that test's work dir, which pytest has removed.
    """
    yield
    from mmengine.visualization import Visualizer
    classes = [Visualizer]
    while classes:
        cls = classes.pop()
        cls._instance_dict.clear()
        classes += cls.__subclasses__()


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def load_tool():
    """``load_tool('data/make_toy_coco.py')`` -> that script as a module."""
    return _load_tool


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """``toy_coco(num_train, num_val, size, seed=0)`` -> folder of a generated toy COCO set.

    Generated once per distinct arguments and session; treat it as read-only (copy it to
    corrupt it).
    """
    make = _load_tool('data/make_toy_coco.py').make_toy_coco
    made = {}

    def get(num_train, num_val, size, seed=0):
        key = (num_train, num_val, size, seed)
        if key not in made:
            out = tmp_path_factory.mktemp('toy_coco')
            make(str(out), num_train=num_train, num_val=num_val, size=size, seed=seed)
            made[key] = str(out)
        return made[key]

    return get


@pytest.fixture(scope='session')
def random_checkpoint(tmp_path_factory):
    """``random_checkpoint(config)`` -> a checkpoint file of the config's model with random
    weights (seeded), as ``load_from``/inferencers read it; made once per config and session."""
    made = {}

    def get(config):
        if config not in made:
            import torch
            from mmengine.config import Config
            from mmengine.registry import MODELS, init_default_scope
            cfg = Config.fromfile(config)
            init_default_scope(cfg.default_scope)
            cfg.model.backbone.init_cfg = None
            torch.manual_seed(0)
            model = MODELS.build(cfg.model)
            model.init_weights()
            path = tmp_path_factory.mktemp('ckpt') / 'random.pth'
            torch.save(dict(state_dict=model.state_dict()), path)
            made[config] = str(path)
        return made[config]

    return get
