"""What the tools share: the runner set-up of ``tools/train.py`` and ``tools/test.py``, and the
evaluation that ``tools/test.py`` and the demos run in-process. Tools are thin scripts over this.
"""
import argparse
import contextlib
import gc
import inspect
import math
import os
import os.path as osp
import statistics
import time

import torch
import torch.distributed as dist
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.logging import print_log
from mmengine.optim import build_optim_wrapper
from mmengine.registry import HOOKS, MODELS, init_default_scope
from mmengine.runner import Runner, set_random_seed

from .engine.weights import is_url


def add_common_args(parser):
    """Arguments shared by ``train.py`` and ``test.py``."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go; defaults to '
                        './work_dirs/<config name>')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. train_dataloader.batch_size=4 '
        'model.backbone.drop_path_rate=0.2 (lists: key="[a,b]")')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='job launcher (pytorch: torchrun, see tools/dist_train.sh)')
    # torch.distributed.launch passes --local_rank; torchrun sets LOCAL_RANK instead
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0)


def load_config(args):
    """Config from ``args.config`` with work dir, overrides and launcher applied."""
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    if args.launcher != 'none':
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def setup_cpu_distributed(cfg):
    """Makes a torchrun launch work on a machine without CUDA: processes talk through gloo.

    mmengine 0.10 assumes GPUs there: its pytorch launcher calls ``torch.cuda.set_device``
    (which a CPU-only torch lacks) and it wraps the model with ``device_ids=[LOCAL_RANK]``. The
    Runner keeps a process group that already exists, and ``device_ids=None`` means the CPU.
    """
    if cfg.launcher != 'pytorch' or torch.cuda.is_available():
        return
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None, broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def end_distributed():
    """Destroys the process group once a run has ended well, after the caller has dropped its
    Runner. Left to the interpreter's exit, gloo's worker threads can outlive its teardown and
    abort the process ('terminate called without an active exception', pytorch/pytorch#190489):
    torchrun then reports a finished run as failed. The Runner's DDP wrapper holds the group,
    so the Runner (cyclic garbage) is collected first. Not after an error: other processes may
    still be in a collective call."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------ evaluation
def test_parser():
    """The command line of ``tools/test.py``."""
    parser = argparse.ArgumentParser(description='Test (evaluate) a checkpoint')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file or http(s) URL')
    parser.add_argument('--show-dir', help='write images with the predictions drawn here')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_model over its "
                        'tta_pipeline (flips, scales)')
    parser.add_argument('--out', help='also write the raw predictions to this .pkl (mmdet: '
                        "the format of mmdet's analysis tools)")
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (inductor): a faster forward after a '
                        'compilation of a minute or two per model')
    add_common_args(parser)
    return parser


def enable_visualization(cfg, show_dir):
    """Makes the config's ``default_hooks.visualization`` draw every test image to show_dir."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit('--show-dir: the config has no default_hooks.visualization to draw '
                         'predictions with')
    with HOOKS.switch_scope_and_registry(cfg.get('default_scope')) as registry:
        hook_cls = registry.get(hook['type'])
    params = inspect.signature(hook_cls.__init__).parameters
    show_dir = osp.abspath(show_dir)
    hook.draw = True
    if 'interval' in params:
        hook.interval = 1
    if 'test_out_dir' in params:  # mmdet: writes PNGs to this folder itself
        hook.test_out_dir = show_dir
    else:  # the hook draws through the visualizer's vis backends
        cfg.visualizer.save_dir = show_dir


def enable_tta(cfg):
    """Wraps the model in the config's ``tta_model`` and tests on its ``tta_pipeline``."""
    missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
    if missing:
        raise SystemExit(f'--tta: the config defines no {" / ".join(missing)} (the base configs '
                         f'configs/_base_/*.py show how)')
    roi_head = cfg.model.get('roi_head') or {}
    if cfg.tta_model.type == 'DetTTAModel' and roi_head.get('mask_head'):
        raise SystemExit(
            "--tta: mmdet's DetTTAModel merges boxes only, and this model predicts masks. "
            'Test boxes alone with --cfg-options model.roi_head.mask_head=None '
            "model.roi_head.mask_roi_extractor=None test_evaluator.metric=bbox")
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    test_dataset_cfg(cfg).pipeline = cfg.tta_pipeline


def test_dataset_cfg(cfg):
    """The config's test dataset, inside its wrappers (e.g. ``RepeatDataset``), if any."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:
        dataset = dataset.dataset
    return dataset


def dump_metric(cfg, out):
    """The metric that writes the raw predictions to ``out``: mmdet's ``DumpDetResults`` (read
    by mmdet's analysis tools), else mmengine's ``DumpResults``."""
    if not out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--out must name a .pkl file, got {out}')
    if osp.exists(out):
        raise SystemExit(f'--out: {out} exists; choose another name or delete it')
    if cfg.get('default_scope') == 'mmdet':
        from mmdet.evaluation import DumpDetResults
        return DumpDetResults(out_file_path=out)
    from mmengine.evaluator import DumpResults
    return DumpResults(out_file_path=out)


def compile_backbones(model, **compile_kwargs):
    """``torch.compile`` -s every ``backbone`` of ``model`` (inside any wrapper: DDP, TTA) in
    place, with ``compile_kwargs`` (e.g. ``mode``), so state-dict keys and checkpoint loading
    stay as they are.

    Only the backbone: it traces to one graph, while the heads' post-processing (NMS, resizing
    to the input image) would break graphs at every data-dependent step. Sizes after the first
    two compile into one dynamic-shape graph, so the varying image sizes of a detection test set
    cost two compilations, not one per size.
    """
    backbones = [m for name, m in model.named_modules() if name.rpartition('.')[2] == 'backbone']
    if not backbones:
        raise SystemExit(f'compile: {type(model).__name__} has no backbone to compile')
    for backbone in backbones:
        backbone.compile(**compile_kwargs)
    print_log(f'compiled the backbone ({type(backbones[0]).__name__}) with torch.compile: the '
              'first batches include the compilation', logger='current')


def evaluate(args):
    """Evaluates ``args.checkpoint`` (``test_parser()``'s arguments); returns the metrics."""
    if not is_url(args.checkpoint) and not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show_dir:
        enable_visualization(cfg, args.show_dir)
    if args.tta:
        enable_tta(cfg)
    dump = dump_metric(cfg, args.out) if args.out else None
    setup_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if args.compile:
        compile_backbones(runner.model)
    if dump is not None:
        runner.test_evaluator.metrics.append(dump)
    metrics = runner.test()
    del runner  # before the process group: its DDP wrapper holds the group
    end_distributed()
    return metrics


# ------------------------------------------------------------------------------ measuring
def peak_rss_mib():
    """This process's peak resident set. (Not ``ru_maxrss``: Linux carries that over exec
    from the parent, whose peak after the timing runs would hide the child's.)"""
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmHWM:')) / 1024


def seconds_per_call(fn, iters=1, rounds=3, warmup=1, device='cpu'):
    """Median over ``rounds`` of the seconds per call of ``fn()``, timed over ``iters`` calls
    in a row (many, for calls too short for one timer reading), after ``warmup`` calls.
    On a GPU the device is synchronised around each round: its work runs asynchronously."""
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        sync()
        times.append((time.perf_counter() - start) / iters)
    return statistics.median(times)


# Matrix-multiply ops of aten and oneDNN, and where their operands are among the inputs.
MATMUL_OPERANDS = {'aten::mm': (0, 1), 'aten::addmm': (1, 2), 'aten::bmm': (0, 1),
                   'aten::baddbmm': (1, 2), 'mkldnn::_linear_pointwise': (0, 1)}


def matmul_flops(name, shapes):
    """FLOPs (2 per multiply-accumulate) of one call of a :data:`MATMUL_OPERANDS` op."""
    a, b = (shapes[i] for i in MATMUL_OPERANDS[name])
    if name == 'mkldnn::_linear_pointwise':  # x [..., K] times the weight [N, K], transposed
        return 2 * math.prod(a) * b[0]
    return 2 * math.prod(a) * b[-1]  # [(B,) M, K] times [(B,) K, N]


def op_split(events, seconds):
    """Where ``seconds`` of profiled time went, from ``prof.key_averages(
    group_by_input_shape=True)``: each category's share, and the matrix multiplies' FLOPs."""
    split = {'matrix multiplies': 0.0, 'convolutions': 0.0, 'fused attention': 0.0}
    flops = 0
    for e in events:
        self_s = e.self_cpu_time_total / 1e6
        if e.key in MATMUL_OPERANDS:
            split['matrix multiplies'] += self_s
            flops += e.count * matmul_flops(e.key, e.input_shapes)
        elif 'convolution' in e.key:
            split['convolutions'] += self_s
        elif 'scaled_dot_product' in e.key:  # SDPA's fused kernels, at matmul speed
            split['fused attention'] += self_s
    split['rest'] = seconds - sum(split.values())
    return split, flops


def profile_ops(step, n=1):
    """:func:`op_split` of ``n`` calls of ``step`` under torch.profiler: (seconds per call by
    kind of op, the matrix multiplies' FLOPs per call)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        t = time.perf_counter()
        for _ in range(n):
            step()
        seconds = time.perf_counter() - t
    split, flops = op_split(prof.key_averages(group_by_input_shape=True), seconds)
    return {k: v / n for k, v in split.items()}, flops / n


def matmul_peak_gflops(dtype, n=2048, reps=5):
    """The best GFLOP/s of an n x n x n matrix multiply: what this CPU's GEMM reaches."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float('inf')
    for _ in range(reps + 1):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def config_path(name):
    """A file path, or ``package::relative/path.py`` for a config shipped in that package
    (``mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py``)."""
    if '::' not in name:
        return name
    from mmengine.utils import get_installed_path
    package, rel = name.split('::', 1)
    return osp.join(get_installed_path(package), '.mim', 'configs', rel)


def generated_train_batch(cfg, batch_size, hw):
    """A training batch of a detection or segmentation config, generated: images of size hw
    with 5 boxes and masks each (detection) or a random label map (segmentation)."""
    if cfg.default_scope == 'mmseg':
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        num_classes = cfg.model.decode_head.num_classes
        inputs, samples = [], []
        for _ in range(batch_size):
            inputs.append(torch.randint(0, 256, (3, *hw), dtype=torch.uint8))
            sample = SegDataSample(metainfo=dict(img_shape=hw, ori_shape=hw))
            sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, *hw)))
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)
    from mmdet.testing import demo_mm_inputs
    heads = cfg.model.get('roi_head', {}).get('bbox_head') or cfg.model.bbox_head
    head = heads[-1] if isinstance(heads, list) else heads
    return demo_mm_inputs(batch_size=batch_size, image_shapes=[(3, *hw)] * batch_size,
                          num_items=[5] * batch_size, num_classes=head.num_classes,
                          with_mask=True)


class TrainStepSplit:
    """Where the time and the activation memory of training steps go: data preprocessing,
    backbone, neck, heads (the rest of the forward, losses included), the backward of the
    heads, neck and backbone, and the optimizer step.

    Forward times come from forward hooks. Backward times are cut where the gradients of the
    neck's and then the backbone's outputs are complete: autograd runs the heads' backward
    before the neck's and the neck's before the backbone's, so the cuts are exact up to the
    little work that overlaps. Activation memory is what autograd keeps for backward, by the
    part whose forward saved it (parameters left out, each storage counted once, as it is
    held). Use :meth:`attach` once, then run each step inside :meth:`measure`, calling
    :meth:`forward_done` between the forward and the backward; :meth:`summary` gives medians.
    """

    def __init__(self, device='cpu'):
        self._sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' \
            else (lambda: None)
        self.steps = []

    def _now(self):
        self._sync()
        return time.perf_counter()

    def attach(self, model, optim_wrapper):
        self._param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
        self._stack, self._step = [], None
        for name in ('data_preprocessor', 'backbone', 'neck'):
            module = getattr(model, name, None)
            if module is not None:
                module.register_forward_pre_hook(self._enter(name))
                module.register_forward_hook(self._leave(name))
        optim_wrapper.optimizer.register_step_pre_hook(self._optimizer_starts)

    def _optimizer_starts(self, optimizer, args, kwargs):
        if self._step is not None:
            self._step['optimizer_start'] = self._now()

    def _enter(self, name):
        def hook(module, args):
            if self._step is not None:
                self._stack.append((name, self._now()))
        return hook

    def _leave(self, name):
        def hook(module, args, output):
            if self._step is None:
                return
            _, start = self._stack.pop()
            self._step['forward'][name] = self._step['forward'].get(name, 0.) \
                + self._now() - start
            if name in ('backbone', 'neck'):  # when its outputs' gradients are complete
                outs = output if isinstance(output, (tuple, list)) else (output,)
                for t in outs:
                    if isinstance(t, torch.Tensor) and t.requires_grad:
                        t.register_hook(self._grad_arrived(name))
        return hook

    def _grad_arrived(self, name):
        def hook(grad):
            self._step['grads_done'][name] = self._now()
        return hook

    def _pack(self, t):
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in self._param_storages and ptr not in self._step['saved']:
            part = self._stack[-1][0] if self._stack else 'heads'
            self._step['saved'][ptr] = (part, storage.nbytes())
        return t

    @contextlib.contextmanager
    def measure(self):
        """One training step: forward, :meth:`forward_done`, backward and optimizer step."""
        self._step = dict(forward={}, grads_done={}, saved={}, start=self._now())
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            yield
        step, self._step = self._step, None
        end = self._now()
        fwd, done = step['forward'], step['grads_done']
        backward_start, optimizer_start = step['forward_end'], step['optimizer_start']
        neck_done = done.get('neck', backward_start)
        backbone_done = done.get('backbone', neck_done)
        record = {f'forward {k}': v for k, v in fwd.items()}
        record['forward heads'] = backward_start - step['start'] - sum(fwd.values())
        record.update({'backward heads': neck_done - backward_start,
                       'backward neck': backbone_done - neck_done,
                       'backward backbone': optimizer_start - backbone_done,
                       'optimizer step': end - optimizer_start})
        for part, nbytes in step['saved'].values():
            key = f'activations {part} MiB'
            record[key] = record.get(key, 0.) + nbytes / 2**20
        self.steps.append(record)

    def forward_done(self):
        self._step['forward_end'] = self._now()

    def summary(self):
        """Median of each figure over the measured steps (seconds, or MiB)."""
        keys = dict.fromkeys(k for step in self.steps for k in step)
        return {k: statistics.median(step.get(k, 0.) for step in self.steps) for k in keys}


def config_train_step(config, batch_size, hw, cfg_options=None, device='cpu', split=None,
                      seed=0):
    """``step()``: one training iteration (data preprocessing, forward with losses, backward,
    optimizer step) of a detection/segmentation config's model with random weights (its
    pretrained checkpoint is not loaded: random weights cost the same) on a generated batch
    (:func:`generated_train_batch`); it returns the loss. ``config`` as :func:`config_path`
    takes it. With a :class:`TrainStepSplit` as ``split``, each step is measured by it.

    Weights, batch and the heads' sampling follow ``seed``, so that every process measuring a
    config does the same work: with random weights the proposals are random, and the RoI
    heads' work with them (Swin-T's Mask R-CNN step at 800x1333 took 10.2-16.0 s in different
    processes without)."""
    set_random_seed(seed)
    cfg = Config.fromfile(config_path(config))
    cfg.merge_from_dict(cfg_options or {})
    init_default_scope(cfg.default_scope)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    batch = generated_train_batch(cfg, batch_size, tuple(hw))

    def step():
        with optim_wrapper.optim_context(model):
            losses = model(**model.data_preprocessor(batch, True), mode='loss')
        loss = model.parse_losses(losses)[0]
        if split is not None:
            split.forward_done()
        optim_wrapper.update_params(loss)
        return loss.detach()

    if split is None:
        return step
    split.attach(model, optim_wrapper)

    def measured_step():
        with split.measure():
            return step()
    return measured_step
