"""tools/train.py, tools/test.py and the torchrun scripts.

The slow test launches ``tools/dist_train.sh`` with 2 processes (gloo on CPU) and checks that
distributed data parallel computes the gradient of the whole batch: each process takes one
image, and the update must equal the mean of the updates of two 1-process runs on those same
images. With plain SGD (no momentum or weight decay) an update is -lr x the gradient, so
comparing checkpoints compares gradients, with no hooks into the training loop. One image per
run keeps every per-batch effect identical between the runs: loss normalisation and the
random RoI sampling (every process starts from the same seed). The backbone stops at block 8
(``out_indices=(7,)``, ViTDet's single map for every pyramid level, besides the word map):
DDP runs with mmengine's default ``find_unused_parameters=False``, which fails on any
parameter without a gradient. Then the distributed run resumes from its checkpoint and ``tools/dist_test.sh`` draws
predictions.
"""
import gc
import os
import os.path as osp
import re
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
import torch._dynamo
from torch.nn.parallel import DistributedDataParallel
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from conftest import REPO_ROOT
from tnt_backbone.apis import enable_visualization
from tnt_backbone.engine import safe_torch_load

TOY_CONFIG = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py')


# ------------------------------------------------------------------------------ fast checks
@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """Default work dirs (./work_dirs/...) land in a fresh folder, not in the repository."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope='module')
def train_tool(load_tool):
    return load_tool('train.py')


def config_from_args(train_tool, argv):
    args = train_tool.parse_args(argv)
    cfg = train_tool.load_config(args)
    train_tool.apply_train_args(cfg, args)
    return cfg


def test_fresh_run_refuses_a_work_dir_with_checkpoints(train_tool, tmp_path):
    (tmp_path / 'epoch_12.pth').write_bytes(b'weights')
    with pytest.raises(SystemExit, match='already holds checkpoints .*epoch_12.pth'):
        train_tool.main([TOY_CONFIG, '--work-dir', str(tmp_path)])
    assert (tmp_path / 'epoch_12.pth').read_bytes() == b'weights'
    for extra in (['--resume'], ['--force']):  # on purpose: allowed
        cfg = config_from_args(train_tool, [TOY_CONFIG, '--work-dir', str(tmp_path), *extra])
        assert cfg.work_dir == str(tmp_path)


def test_resume_and_override_arguments(train_tool, tmp_path):
    cfg = config_from_args(train_tool, [TOY_CONFIG, '--resume'])
    assert cfg.resume is True and cfg.load_from is None  # latest checkpoint of the work dir
    assert cfg.work_dir == osp.join('./work_dirs', 'mask-rcnn_tnt-ti-p16_fpn_toy')
    ckpt = tmp_path / 'iter_3.pth'
    ckpt.write_bytes(b'')
    cfg = config_from_args(train_tool, [TOY_CONFIG, '--resume', str(ckpt), '--cfg-options',
                                        'train_dataloader.batch_size=1'])
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    assert cfg.train_dataloader.batch_size == 1
    with pytest.raises(SystemExit, match='checkpoint not found'):
        config_from_args(train_tool, [TOY_CONFIG, '--resume', str(tmp_path / 'missing.pth')])
    with pytest.raises(SystemExit, match='config file not found'):
        config_from_args(train_tool, [str(tmp_path / 'missing.py')])


def test_compile_option_that_is_no_torch_compile_arguments_is_refused(train_tool):
    with pytest.raises(SystemExit, match=r'compile must be True .* got "\{.mode.:.default.\}"'):
        train_tool.main([TOY_CONFIG, '--work-dir', 'work', '--cfg-options',
                         "compile={'mode':'default'}"])


@pytest.mark.skipif(torch.cuda.is_available(), reason='the gloo fallback is for CPU machines')
def test_distributed_launch_on_cpu_uses_gloo(train_tool, one_process_launch):
    cfg = config_from_args(train_tool, [TOY_CONFIG])
    train_tool.setup_cpu_distributed(cfg)
    assert not torch.distributed.is_initialized() and 'model_wrapper_cfg' not in cfg
    cfg = config_from_args(train_tool, [TOY_CONFIG, '--launcher', 'pytorch'])
    train_tool.setup_cpu_distributed(cfg)
    try:
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
        assert cfg.model_wrapper_cfg.device_ids is None  # the CPU, not GPU LOCAL_RANK
    finally:
        train_tool.end_distributed()  # what tools/train.py does after training
    assert not torch.distributed.is_initialized()
    train_tool.end_distributed()  # without a group: nothing to do


def test_show_dir_turns_on_the_visualization_hook(tmp_path):
    cfg = Config.fromfile(TOY_CONFIG)  # mmdet: the hook writes the images itself
    enable_visualization(cfg, str(tmp_path / 'vis'))
    hook = cfg.default_hooks.visualization
    assert hook.draw is True and hook.test_out_dir == str(tmp_path / 'vis')
    seg = Config(dict(default_scope='mmseg',  # mmseg: through the visualizer's backends
                      default_hooks=dict(visualization=dict(type='SegVisualizationHook')),
                      visualizer=dict(type='SegLocalVisualizer')))
    enable_visualization(seg, 'vis')
    assert seg.default_hooks.visualization.draw is True
    assert seg.default_hooks.visualization.interval == 1
    assert seg.visualizer.save_dir == osp.abspath('vis')
    with pytest.raises(SystemExit, match='no default_hooks.visualization'):
        enable_visualization(Config(dict(default_scope='mmdet')), 'vis')


# ------------------------------------------------------------------ torchrun, 2 processes
LR = 0.1
GRAD_CHECK_CONFIG = """
_base_ = {toy!r}
model = dict(backbone=dict(out_indices=(7,)))
# one image per process and iteration, in dataset order
train_dataloader = dict(batch_size=1, sampler=dict(shuffle=False))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2)
val_dataloader = val_cfg = val_evaluator = None
# plain SGD at a constant lr: the update of a parameter is -lr x its gradient
optim_wrapper = dict(_delete_=True, type='OptimWrapper', optimizer=dict(type='SGD', lr={lr}))
param_scheduler = []
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=1, max_keep_ckpts=-1),
                     logger=dict(interval=1))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0)
load_from = {init!r}
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def one_process_launch(monkeypatch):
    """The environment torchrun gives the one process of a 1-process group."""
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)


def launch(cwd, *cmds):
    """Runs tools at once (``python`` means this interpreter); returns their outputs.

    Each gets one thread: two processes already fill the 2 cores CI has. Outputs go through
    files, as a full pipe would stall a process until the one before it is read.
    """
    procs = []
    for cmd in cmds:
        env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
                   OMP_NUM_THREADS='1')
        cmd = [sys.executable if c == 'python' else c for c in cmd]
        log = tempfile.TemporaryFile('w+')
        procs.append((cmd, log, subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=log,
                                                 stderr=subprocess.STDOUT)))
    outputs = []
    for cmd, log, proc in procs:
        proc.wait(timeout=600)
        log.seek(0)
        output = log.read()
        assert proc.returncode == 0, f'{" ".join(cmd)} failed:\n{output[-4000:]}'
        outputs.append(output)
    return outputs if len(outputs) > 1 else outputs[0]


def parameters(path, names):
    state = safe_torch_load(path)['state_dict']
    return {n: state[n].double() for n in names}


@pytest.fixture(scope='module')
def workspace(toy_coco, tmp_path_factory):
    """A folder holding data/toy_coco (4 train, 2 val images of 64 px), a grad-check config
    deriving from the toy config, and the initial weights every run starts from."""
    root = tmp_path_factory.mktemp('dist')
    os.makedirs(root / 'data')
    os.symlink(toy_coco(4, 2, 64), root / 'data' / 'toy_coco')
    init = str(root / 'init.pth')
    config = root / 'grad_check.py'
    config.write_text(GRAD_CHECK_CONFIG.format(toy=TOY_CONFIG, init=init, lr=LR))
    cfg = Config.fromfile(str(config))  # the model every run builds (8 blocks)
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict()), init)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    return dict(root=str(root), config=str(config), init=init, names=names)


@pytest.mark.slow
def test_two_process_training_matches_one_process_gradients_and_resumes(workspace):
    root, config, names = workspace['root'], workspace['config'], workspace['names']
    train_sh = osp.join(REPO_ROOT, 'tools', 'dist_train.sh')
    train_py = osp.join(REPO_ROOT, 'tools', 'train.py')
    launch(root, ['bash', train_sh, config, '2', '--work-dir', 'ddp'])
    launch(root, *[  # one process on each image the two processes took in the first iteration
        ['python', train_py, config, '--work-dir', f'single{i}', '--cfg-options',
         'train_cfg.max_iters=1', f'train_dataloader.dataset.indices=[{i}]'] for i in (0, 1)])

    w0 = parameters(workspace['init'], names)
    ddp = parameters(osp.join(root, 'ddp', 'iter_1.pth'), names)
    single = [parameters(osp.join(root, f'single{i}', 'iter_1.pth'), names) for i in (0, 1)]
    grad_ddp = torch.cat([(w0[n] - ddp[n]).flatten() for n in names]) / LR
    grads = [torch.cat([(w0[n] - s[n]).flatten() for n in names]) / LR for s in single]
    mean = (grads[0] + grads[1]) / 2
    assert (grads[0] - grads[1]).norm() > 0.1 * mean.norm()  # the images really differed
    # float32 weights: an update is known to ~6e-8 of the weight it changes (|w| <= ~1)
    torch.testing.assert_close(grad_ddp, mean, rtol=1e-3, atol=1e-5)
    assert (grad_ddp - mean).norm() < 1e-4 * mean.norm()

    before = {n: open(osp.join(root, 'ddp', n), 'rb').read() for n in ('iter_1.pth',
                                                                       'iter_2.pth')}
    out = launch(root, ['bash', train_sh, config, '2', '--work-dir', 'ddp', '--resume',
                        '--cfg-options', 'train_cfg.max_iters=4'])
    assert 'resumed epoch: 0, iter: 2' in out
    assert re.search(r'Iter\(train\) \[3/4\]', out) and not re.search(r'\[1/4\]', out)
    assert safe_torch_load(osp.join(root, 'ddp', 'iter_4.pth'))['meta']['iter'] == 4
    for name, data in before.items():  # earlier checkpoints are left as they were
        assert open(osp.join(root, 'ddp', name), 'rb').read() == data

    test_sh = osp.join(REPO_ROOT, 'tools', 'dist_test.sh')
    # the initial weights (after 4 SGD steps at lr 0.1 the toy detector detects nothing, even
    # at score_thr=0), every box kept: the COCO metric gets detections from both processes
    out = launch(root, ['bash', test_sh, config, workspace['init'], '2',
                        '--work-dir', 'test', '--show-dir', 'shown',
                        '--cfg-options', 'model.test_cfg.rcnn.score_thr=0'])
    assert 'Iter(test) [1/1]' in out  # 2 val images, one per process
    assert re.search(r'coco/bbox_mAP: [\d.]+', out)
    # mmdet's visualizer draws on rank 0 only: its share of the 2 val images, the first
    assert os.listdir(osp.join(root, 'shown')) == ['000001.png']


@pytest.mark.skipif(torch.cuda.is_available(), reason='the gloo fallback is for CPU machines')
def test_evaluation_ends_its_process_group_after_freeing_the_ddp_model(workspace, load_tool,
                                                                      one_process_launch,
                                                                      monkeypatch):
    """Under a launcher, tools/test.py destroys the process group once the run is over, and
    only after the Runner's DDP wrapper, which holds the group, is gone (left to the
    interpreter's exit, the group aborted rank 0 in CI: see ``end_distributed``)."""
    monkeypatch.chdir(workspace['root'])
    destroy, ddp_alive = torch.distributed.destroy_process_group, []

    def counting_destroy(*args, **kwargs):
        ddp_alive.append(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects()))
        return destroy(*args, **kwargs)

    monkeypatch.setattr(torch.distributed, 'destroy_process_group', counting_destroy)
    metrics = load_tool('test.py').main([workspace['config'], workspace['init'],
                                         '--launcher', 'pytorch', '--work-dir', 'test_1proc'])
    assert 'coco/bbox_mAP' in metrics
    assert ddp_alive == [0] and not torch.distributed.is_initialized()


@pytest.mark.slow
def test_compile_option_trains_a_compiled_backbone_into_plain_checkpoints(train_tool, load_tool,
                                                                           tmp_path):
    """``compile=True`` compiles the backbone (mmengine's whole-train_step compile fails in
    the optimizer under torch 2.13); checkpoints keep the uncompiled model's keys."""
    config = osp.join(REPO_ROOT, 'configs', 'segmentation',
                      'upernet_tnt-ti-p16_toy-ade20k-128x128.py')
    load_tool('data/make_toy_ade20k.py').make_toy_ade20k('data/toy_ade20k', 2, 1, 64)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    runner = train_tool.main([config, '--work-dir', 'work', '--cfg-options', 'compile=True',
                              'train_cfg.max_iters=2', 'param_scheduler=None'])
    assert runner.iter == 2
    assert torch._dynamo.utils.counters['stats']['unique_graphs'] >= 1
    saved = safe_torch_load('work/iter_2.pth')['state_dict']
    init_default_scope('mmseg')
    plain = MODELS.build(Config.fromfile(config).model)
    assert set(saved) == set(plain.state_dict())
