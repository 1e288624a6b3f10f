"""The GPU check: one command that measures what only a GPU can tell, in under 5 minutes on one
GPU, and that runs end to end on a CPU with small sizes (``--device cpu --small``, tested).

    python tools/analysis/gpu_check.py --out-dir gpu_check
    python tools/analysis/gpu_check.py --device cpu --small --out-dir /tmp/gpu_check

Sections (``--sections`` picks some). Each catches and records its own failure, with the
figures it had measured by then, and the results are rewritten after every section, so a run
that dies keeps what it measured: ``OUT_DIR/gpu_check.json`` and a markdown table,
``OUT_DIR/gpu_check.md``.

- ``parity``: TNT-S as the detection configs build it (14x14 windows, global blocks 6 and 12,
  ``with_cp='words'``) and PyramidTNT-S, one training forward and backward in fp32 on the
  device against the same on the CPU in fp32 and float64: largest error of the outputs (each
  relative to its largest reference value) and of the gradients of the input and every
  parameter (relative to the largest of all). Target: 1e-4. TF32 is off meanwhile: this
  compares arithmetic, not precision modes.
- ``word_attention``: ``word_attention(impl='kernel')`` (the device's fused kernel: Triton on
  CUDA, C++ on a CPU) against ``impl='sdpa'`` (the fallback) on the shapes of TNT-S's word
  layer at 800x1333, batch 2 (8400 sentences of 16 words, 4 heads of 6 channels), fp32 and
  bf16: forward and forward + backward time, peak memory. GPU target: kernel >= 2x SDPA
  (fp32, forward + backward). On a GPU also the Triton kernel's fp32 forward + backward time
  with 512-4096 elements per tile and 2, 4 or 8 warps per program (its defaults, 2048 and 4,
  are untuned).
- ``triton_resources``: the Triton kernels, forward and backward, fp32 and bf16, on TNT-S's
  word heads, compiled ahead of time for the device's GPU (on a CPU: for compute capability
  9.0, an H100/H200; no GPU needed): registers and stack bytes (spilled registers) per thread,
  shared memory, and the warps an SM can hold by registers, at the default launch settings
  and those the ``word_attention`` sweep times. Target, judged on a CPU too: no spills at the
  defaults.
- ``mask_rcnn``: one training step of Mask R-CNN TNT-S and PyramidTNT-S (our configs) and of
  mmdet's Swin-T config at 800x1333, batch 2, fp32, random weights, generated batch: median
  step time and peak memory (all allocations: model, gradients, optimizer state,
  activations). GPU targets: TNT-S <= 1.2x Swin-T's time, <= 1.0x its memory; PyramidTNT-S's
  ratios are reported (its attention bias trains through SDPA's CUDA kernels there).
- ``toy_det_amp_float16``, ``toy_det_amp_bfloat16`` (GPU), ``toy_det_fp32`` (CPU):
  ``tools/train.py --amp`` on generated toy COCO, Mask R-CNN TNT-Ti, 20 iterations of 4 images,
  then a ``DetInferencer`` prediction from the checkpoint. mmcv 2.1.0's RoIAlign has no bf16
  kernel (CPU or CUDA) and its CPU NMS takes fp32 boxes only, so the bf16 run takes
  torchvision's RoIAlign (``use_torchvision=True``; it computes in fp32 under autocast), and
  a CPU trains the detector without ``--amp``, which still runs every step of the section.
- ``toy_seg_amp_bfloat16`` (CPU): the same with UperNet TNT-Ti on generated toy ADE20K, bf16,
  and an ``MMSegInferencer`` prediction: the AMP run a CPU can do (``--amp`` is bf16 there).
- ``throughput``: TNT-S against timm's ``tnt_s_patch16_224`` (class-token features), batch 64 at
  224: img/s of inference eager, compiled (``torch.compile``) and under bf16 autocast, and of
  a training step (forward + backward) eager and under bf16 autocast. Where timm cannot be
  imported its rows say so.

Peak memory is ``torch.cuda.max_memory_allocated``; on a CPU it is not measured here (peak RSS
needs a fresh process per figure: ``train_iter_cost.py``, ``benchmark.py --memory``).
``--small`` shrinks every size (TNT-Ti instead of TNT-S, tiny images, few iterations).
"""
import argparse
import gc
import itertools
import json
import math
import os
import os.path as osp
import platform
import subprocess
import sys
import time
import traceback
from types import SimpleNamespace

import torch

from tnt_backbone.apis import config_train_step, seconds_per_call

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TNT_S_MASK_RCNN = osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-s-p16_fpn_1x_coco.py')
PYRAMID_TNT_S_MASK_RCNN = osp.join(REPO_ROOT, 'configs', 'detection',
                                   'mask-rcnn_pyramid-tnt-s_fpn_1x_coco.py')
SWIN_T_MASK_RCNN = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
AMP_DTYPE = torch.bfloat16  # of the throughput rows: the one autocast dtype of both devices
PARITY_BOUND = 1e-4

SIZES = dict(
    full=SimpleNamespace(
        arch='small', parity_hw=(224, 320), parity_batch=2, window_size=14,
        word_hw=(800, 1333), word_batch=2, word_calls=50,
        det_hw=(800, 1333), det_batch=2, det_rounds=3, det_warmup=2, det_options={},
        toy_iters=20, bench_arch='small', bench_name='TNT-S', bench_hw=224, bench_batch=64,
        bench_rounds=10,
        # the Triton kernel's launch settings tried besides its defaults: elements per tile,
        # warps per program
        launch_sweep=list(itertools.product((512, 1024, 2048, 4096), (2, 4, 8)))),
    small=SimpleNamespace(
        arch='tiny', parity_hw=(64, 96), parity_batch=2, window_size=2,
        word_hw=(128, 160), word_batch=1, word_calls=5,
        det_hw=(64, 96), det_batch=1, det_rounds=1, det_warmup=0,
        det_options={'model.train_cfg.rcnn.sampler.num': 32},
        toy_iters=1,
        # two blocks of TNT-Ti: torch.compile of twelve takes minutes on two cores
        bench_arch=dict(word_dim=12, sentence_dim=192, depth=2, word_heads=2,
                        sentence_heads=3, mlp_ratio=4.), bench_name='TNT-Ti, 2 blocks',
        bench_hw=64, bench_batch=2, bench_rounds=2, launch_sweep=[]))
# The toy runs: config, data generator, its folder (the config's data_root, relative to the
# run's folder), its arguments for n training images, the image predicted, iterations per
# image, and the options that shorten training to n iterations.
TOY = dict(
    det=dict(
        config=osp.join(REPO_ROOT, 'configs', 'detection', 'mask-rcnn_tnt-ti-p16_fpn_toy.py'),
        generator='make_toy_coco.py', data=osp.join('data', 'toy_coco'),
        image=osp.join('images', 'val', '000001.png'), images_per_iter=4,
        options=lambda n: ['train_cfg.max_epochs=1']),  # an epoch of n iterations
    seg=dict(
        config=osp.join(REPO_ROOT, 'configs', 'segmentation',
                        'upernet_tnt-ti-p16_toy-ade20k-128x128.py'),
        generator='make_toy_ade20k.py', data=osp.join('data', 'toy_ade20k'),
        image=osp.join('images', 'validation', 'toy_val_000001.jpg'), images_per_iter=4,
        options=lambda n: [f'train_cfg.max_iters={n}', f'train_cfg.val_interval={n}',
                           f'default_hooks.checkpoint.interval={n}']))
# mmcv 2.1.0's RoIAlign kernels take fp32 and fp16 only; torchvision's casts to fp32 under
# autocast
TORCHVISION_ROI_ALIGN = ['model.roi_head.bbox_roi_extractor.roi_layer.use_torchvision=True',
                         'model.roi_head.mask_roi_extractor.roi_layer.use_torchvision=True']


class Section:
    """What one section measured: ``figures`` (name -> value) and ``targets``; filled as it
    goes, so that a failure keeps what came before it."""

    def __init__(self, ctx):
        self.ctx, self.figures, self.targets = ctx, {}, []

    def target(self, name, value, bound, at_most=True, gpu_only=True):
        """A target; judged on a GPU, and on a CPU too unless ``gpu_only``."""
        judged = self.ctx.cuda or not gpu_only
        met = (value <= bound if at_most else value >= bound) if judged else None
        self.targets.append(dict(name=name, value=value, bound=bound,
                                 relation='<=' if at_most else '>=', met=met))


# ------------------------------------------------------------------------------ helpers
def peak_memory_mib(fn, device):
    """(peak allocated while ``fn()`` runs, allocated before it), in MiB; None on a CPU."""
    if torch.device(device).type != 'cuda':
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20, before / 2**20


def free_device_memory():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def relative_error(values, refs):
    """The worst over tensor pairs of largest |value - ref| over largest |ref|."""
    return max(((v.double().cpu() - r).abs().max() / r.abs().max()).item()
               for v, r in zip(values, refs))


def gradient_error(grads, refs):
    """Largest |grad - ref| over largest |ref|, over all gradients at once: some are zero but
    for rounding (conv biases before a batch-statistics BatchNorm), so no scale of their own
    measures their error."""
    return (max((g - r).abs().max() for g, r in zip(grads, refs))
            / max(r.abs().max() for r in refs)).item()


def tnt_backbone_for_parity(sizes):
    from tnt_backbone.models import TNT

    # the backbone of configs/_base_/tnt-s-p16_detection.py, without stochastic depth
    return TNT(arch=sizes.arch, out_indices=(2, 5, 8, 11), window_size=sizes.window_size,
               global_attn_indices=(5, 11), with_cp='words')


def pyramid_tnt_for_parity(sizes):
    from tnt_backbone.models import PyramidTNT
    return PyramidTNT(arch=sizes.arch, out_indices=(0, 1, 2, 3), word_out_indices=(1, ))


def outputs_and_gradients(model, x, weights, device, dtype):
    """One training forward and backward of ``model`` on ``x`` (loss: outputs weighted by
    ``weights``) on ``device`` in ``dtype``: (outputs, [grad of x, grads of parameters])."""
    model.to(device, dtype).train()
    x = x.to(device, dtype).requires_grad_()
    outs = model(x)
    outs = outs if isinstance(outs, (tuple, list)) else (outs, )
    if weights is None:  # the reference run draws them
        weights = [torch.randn(o.shape, dtype=torch.float64) for o in outs]
    loss = sum((o * w.to(device, dtype)).sum() for o, w in zip(outs, weights))
    grads = torch.autograd.grad(loss, [x, *model.parameters()])
    return [o.detach().double().cpu() for o in outs], \
        [g.double().cpu() for g in grads], weights


# ------------------------------------------------------------------------------ sections
def check_parity(sec):
    ctx, sizes = sec.ctx, sec.ctx.sizes
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        for name, build in (('tnt', tnt_backbone_for_parity),
                            ('pyramid_tnt', pyramid_tnt_for_parity)):
            torch.manual_seed(0)
            model = build(sizes)
            x = torch.randn(sizes.parity_batch, 3, *sizes.parity_hw, dtype=torch.float64)
            ref_out, ref_grad, weights = outputs_and_gradients(model, x, None, 'cpu',
                                                               torch.float64)
            runs = {'cpu_fp32': ('cpu', torch.float32)}
            if ctx.device != 'cpu':
                runs['device_fp32'] = (ctx.device, torch.float32)
            results = {}
            for run, (device, dtype) in runs.items():
                results[run] = outputs_and_gradients(model, x, weights, device, dtype)[:2]
                out, grad = results[run]
                sec.figures[f'{name}_{run}_vs_cpu_fp64_outputs'] = relative_error(out, ref_out)
                sec.figures[f'{name}_{run}_vs_cpu_fp64_gradients'] = gradient_error(
                    grad, ref_grad)
            run = 'device_fp32' if 'device_fp32' in runs else 'cpu_fp32'
            for kind in ('outputs', 'gradients'):
                sec.target(f'{name} {run} vs cpu_fp64, {kind}',
                           sec.figures[f'{name}_{run}_vs_cpu_fp64_{kind}'], PARITY_BOUND,
                           gpu_only=False)
            if 'device_fp32' in results:
                (out, grad), (cpu_out, cpu_grad) = results['device_fp32'], results['cpu_fp32']
                for kind, err in (('outputs', relative_error(out, cpu_out)),
                                  ('gradients', gradient_error(grad, cpu_grad))):
                    sec.figures[f'{name}_device_fp32_vs_cpu_fp32_{kind}'] = err
                    sec.target(f'{name} device_fp32 vs cpu_fp32, {kind}', err, PARITY_BOUND)
            del model
            free_device_memory()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def check_word_attention(sec):
    from tnt_backbone.ops import word_attention
    ctx, sizes = sec.ctx, sec.ctx.sizes
    heads, head_dim = 4, 6  # TNT-S's word layer: c = 24
    channels, scale = heads * head_dim, head_dim ** -0.5
    sentences = sizes.word_batch * math.prod(math.ceil(s / 16) for s in sizes.word_hw)
    sec.figures['sentences'] = sentences
    for dtype in (torch.float32, torch.bfloat16):
        dt = str(dtype).split('.')[1]
        torch.manual_seed(0)
        qkv = torch.randn(sentences, 16, 3 * channels, device=ctx.device, dtype=dtype)
        grad = torch.randn(sentences, 16, channels, device=ctx.device, dtype=dtype)
        leaf = qkv.clone().requires_grad_()
        outputs = {}
        for impl in ('kernel', 'sdpa'):
            def forward(impl=impl):
                with torch.no_grad():
                    return word_attention(qkv, heads, scale, impl=impl)

            def train(impl=impl):
                word_attention(leaf, heads, scale, impl=impl).backward(grad)
                leaf.grad = None

            outputs[impl] = forward().float()
            for mode, fn in (('forward', forward), ('train', train)):
                sec.figures[f'{dt}_{impl}_{mode}_ms'] = 1e3 * seconds_per_call(
                    fn, iters=sizes.word_calls, rounds=5, warmup=3, device=ctx.device)
            peak = peak_memory_mib(train, ctx.device)
            if peak is not None:
                sec.figures[f'{dt}_{impl}_train_peak_mib'] = peak[0] - peak[1]
        sec.figures[f'{dt}_kernel_vs_sdpa_max_error'] = relative_error(
            [outputs['kernel']], [outputs['sdpa'].double().cpu()])
        for mode in ('forward', 'train'):
            sec.figures[f'{dt}_{mode}_kernel_speedup'] = \
                sec.figures[f'{dt}_sdpa_{mode}_ms'] / sec.figures[f'{dt}_kernel_{mode}_ms']
    sec.target('word attention kernel vs SDPA, fp32 forward+backward, speed-up',
               sec.figures['float32_train_kernel_speedup'], 2., at_most=False)
    if ctx.cuda:  # the Triton kernel's launch settings are untuned: time a few
        from tnt_backbone.ops.triton_word_attention import launch_config
        sweep = sec.figures['float32_train_ms_by_tile_and_warps'] = {}
        torch.manual_seed(0)
        leaf = torch.randn(sentences, 16, 3 * channels, device=ctx.device, requires_grad=True)
        grad = torch.randn(sentences, 16, channels, device=ctx.device)

        def train():
            word_attention(leaf, heads, scale, impl='kernel').backward(grad)
            leaf.grad = None

        for tile, warps in sizes.launch_sweep:
            try:  # a setting can need more registers or shared memory than there are
                with launch_config(tile_elements=tile, num_warps=warps):
                    sweep[f'tile{tile}_warps{warps}'] = 1e3 * seconds_per_call(
                        train, iters=sizes.word_calls, rounds=3, warmup=2, device=ctx.device)
            except Exception as error:  # recorded; the other settings still run
                sweep[f'tile{tile}_warps{warps}'] = f'{type(error).__name__}: {error}'[:120]


def check_triton_resources(sec):
    from tnt_backbone.ops.triton_word_attention import compiled_resources, launch_config
    ctx = sec.ctx
    major, minor = torch.cuda.get_device_capability(ctx.device) if ctx.cuda else (9, 0)
    sec.figures['compute_capability'] = capability = 10 * major + minor
    heads, head_dim = 4, 6  # TNT-S's word layer
    for setting in [None] + ctx.sizes.launch_sweep:
        name = 'default' if setting is None else 'tile{}_warps{}'.format(*setting)
        with launch_config(*setting or ()):
            for dtype, kind in itertools.product((torch.float32, torch.bfloat16),
                                                 ('forward', 'backward')):
                used = compiled_resources(kind == 'backward', dtype, heads, head_dim, capability)
                # registers are allocated per warp in units of 256, 64K of them per SM, which
                # holds whole programs, 64 warps at most
                warp_registers = math.ceil(used['registers'] * 32 / 256) * 256
                programs = 65536 // (warp_registers * used['num_warps'])
                used['warps_per_sm_by_registers'] = min(64, programs * used['num_warps'])
                sec.figures[f'{str(dtype)[6:]}_{kind}_{name}'] = used
    spilled = sum(sec.figures[f'{dt}_{kind}_default']['stack_bytes']
                  for dt, kind in itertools.product(('float32', 'bfloat16'),
                                                    ('forward', 'backward')))
    sec.target('Triton kernels at their default launch settings, bytes of spilled registers',
               spilled, 0, gpu_only=False)


def check_mask_rcnn(sec):
    ctx, sizes = sec.ctx, sec.ctx.sizes
    sec.figures['shape'] = f'{sizes.det_hw[0]}x{sizes.det_hw[1]}, batch {sizes.det_batch}'
    sec.figures.update(sizes.det_options)
    for name, config in (('tnt_s', TNT_S_MASK_RCNN), ('pyramid_tnt_s', PYRAMID_TNT_S_MASK_RCNN),
                         ('swin_t', SWIN_T_MASK_RCNN)):
        step = config_train_step(config, sizes.det_batch, sizes.det_hw, sizes.det_options,
                                 ctx.device)
        sec.figures[f'{name}_step_s'] = seconds_per_call(
            step, rounds=sizes.det_rounds, warmup=sizes.det_warmup, device=ctx.device)
        peak = peak_memory_mib(step, ctx.device)
        if peak is not None:
            sec.figures[f'{name}_peak_mib'] = peak[0]
            sec.figures[f'{name}_peak_over_step_start_mib'] = peak[0] - peak[1]
        del step
        free_device_memory()
    fig = sec.figures
    fig['pyramid_tnt_s_vs_swin_t_step'] = fig['pyramid_tnt_s_step_s'] / fig['swin_t_step_s']
    if 'pyramid_tnt_s_peak_mib' in fig:
        fig['pyramid_tnt_s_vs_swin_t_peak'] = \
            fig['pyramid_tnt_s_peak_mib'] / fig['swin_t_peak_mib']
    sec.target('Mask R-CNN TNT-S / Swin-T, step time',
               fig['tnt_s_step_s'] / fig['swin_t_step_s'], 1.2)
    if 'tnt_s_peak_mib' in fig:
        sec.target('Mask R-CNN TNT-S / Swin-T, peak memory',
                   fig['tnt_s_peak_mib'] / fig['swin_t_peak_mib'], 1.0)


def run_logged(cmd, log, env=None, cwd=None):
    """Runs cmd with its output in the file ``log``; on failure raises with the log's tail."""
    with open(log, 'w') as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if done.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f'{" ".join(cmd)} exited with {done.returncode}; end of {log}:\n'
                           f'{tail}')


def tool_env(device):
    """Environment of the tools run as commands: this repository importable, and no GPU
    visible when the check runs on the CPU."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO_ROOT, os.environ.get('PYTHONPATH')) if p))
    if device == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def toy_data(ctx, task):
    """The generated toy data set of ``task``, made once per run, ``toy_iters`` iterations of
    training images. Returns the folder the toy config's relative data_root starts from."""
    toy, root = TOY[task], osp.join(ctx.work_dir, 'toy')
    data = osp.join(root, toy['data'])
    if not osp.isdir(data):
        os.makedirs(root, exist_ok=True)
        run_logged([sys.executable, osp.join(REPO_ROOT, 'tools', 'data', toy['generator']),
                    '--out', data, '--train', str(ctx.sizes.toy_iters * toy['images_per_iter']),
                    '--val', '2'], osp.join(root, f'make_{task}.log'), env=tool_env(ctx.device))
    return root


def logged_scalars(work_dir):
    """The training iterations' logged scalars (mmengine's ``vis_data/scalars.json``)."""
    from glob import glob
    found = glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    if len(found) != 1:
        raise RuntimeError(f'expected one scalars.json under {work_dir}, found {found}')
    with open(found[0]) as f:
        rows = [json.loads(line) for line in f]
    return [r for r in rows if 'loss' in r]


def check_toy(sec, task, dtype=None, extra_options=()):
    """Trains the toy config of ``task`` by ``tools/train.py`` (``--amp`` with ``dtype``, or
    fp32 if None), then predicts an image from its last checkpoint."""
    from mmengine.config import Config

    from tnt_backbone.engine import safe_torch_load
    from tnt_backbone.inference import predict_images
    ctx, toy, iters = sec.ctx, TOY[task], sec.ctx.sizes.toy_iters
    root = toy_data(ctx, task)
    work = osp.join(root, f'{task}_{dtype or "fp32"}')
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), toy['config'], '--force',
           '--work-dir', work]
    options = [*toy['options'](iters), f'default_hooks.logger.interval={max(1, iters // 2)}',
               *extra_options]
    if dtype:
        cmd.append('--amp')
        options.append(f'optim_wrapper.dtype={dtype}')
    start = time.perf_counter()
    run_logged([*cmd, '--cfg-options', *options], work + '.log', env=tool_env(ctx.device),
               cwd=root)
    sec.figures['train_command_s'] = time.perf_counter() - start
    rows = logged_scalars(work)
    sec.figures['iterations'] = rows[-1]['iter']
    sec.figures['losses'] = [r['loss'] for r in rows]
    sec.figures['median_iter_s'] = sorted(r['time'] for r in rows)[len(rows) // 2]
    if 'memory' in rows[-1]:  # mmengine logs max_memory_allocated (MB) on a GPU
        sec.figures['logged_memory_mb'] = rows[-1]['memory']
    if not all(math.isfinite(loss) for loss in sec.figures['losses']):
        raise RuntimeError(f'non-finite losses: {sec.figures["losses"]}')
    dumped = Config.fromfile(osp.join(work, osp.basename(toy['config']))).optim_wrapper
    sec.figures['optim_wrapper'] = dumped.get('type', 'OptimWrapper')
    sec.figures['dtype'] = dumped.get('dtype')
    with open(osp.join(work, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    scaler = safe_torch_load(checkpoint)['optimizer'].get('loss_scaler', {})
    sec.figures['loss_scale'] = scaler.get('scale')  # fp16 only: bf16 needs none

    cfg = Config.fromfile(toy['config'])
    if task == 'det':
        cfg.model.test_cfg.rcnn.score_thr = 0.  # a few iterations from scratch score low
    image = osp.join(root, toy['data'], toy['image'])
    pred_dir = osp.join(work, 'predict')
    start = time.perf_counter()
    predict_images(cfg, checkpoint, [image], pred_dir, score_thr=0., device=ctx.device)
    sec.figures['predict_s'] = time.perf_counter() - start
    stem = osp.splitext(osp.basename(image))[0]
    with open(osp.join(pred_dir, 'preds', f'{stem}.json')) as f:
        pred = json.load(f)
    if task == 'det':
        sec.figures['predicted_boxes'] = pred['bboxes']
        sec.figures['predicted_masks'] = len(pred['masks'])
        sec.figures['scores'] = pred['scores']
    else:
        import numpy as np
        from PIL import Image
        label_map = np.array(Image.open(osp.join(pred_dir, 'preds', pred['label_map'])))
        sec.figures['label_map_shape'] = list(label_map.shape)
        sec.figures['image_shape'] = list(np.array(Image.open(image)).shape[:2])
        sec.figures['labels_predicted'] = sorted(int(v) for v in np.unique(label_map))
        sec.figures['classes'] = len(pred['classes'])


def timm_tnt(hw):
    """timm's TNT-S as a feature extractor, or the reason it cannot be had here."""
    try:
        import timm
    except Exception as e:  # timm imports torchvision, which may be missing or broken
        return None, f'timm not importable: {type(e).__name__}: {e}'.splitlines()[0]
    return timm.create_model('tnt_s_patch16_224', num_classes=0, img_size=hw), timm.__version__


def check_throughput(sec):
    from tnt_backbone.models import TNT
    ctx, sizes = sec.ctx, sec.ctx.sizes
    hw, batch = sizes.bench_hw, sizes.bench_batch
    torch.manual_seed(0)
    sec.figures['model'] = f'{sizes.bench_name}, {hw}x{hw}, batch {batch}'
    models = {'ours': TNT(arch=sizes.bench_arch, out_type='cls_token')}
    if sizes.bench_arch == 'small':
        timm_model, sec.figures['timm'] = timm_tnt(hw)
        if timm_model is not None:
            models['timm'] = timm_model
    else:
        sec.figures['timm'] = f'timm has no {sizes.bench_name}: ours alone'
    x = torch.randn(batch, 3, hw, hw, device=ctx.device)

    def run(model, train, amp):
        with torch.autocast(torch.device(ctx.device).type, dtype=AMP_DTYPE, enabled=amp), \
                torch.inference_mode(not train):
            outs = model(x)
        if train:
            outs = outs if isinstance(outs, (tuple, list)) else (outs, )
            sum(o.float().mean() for o in outs).backward()
            model.zero_grad(set_to_none=True)

    rows = (('infer_eager', False, False), ('infer_amp', False, True),
            ('train_eager', True, False), ('train_amp', True, True))
    for name, model in models.items():
        model.to(ctx.device)
        for row, train, amp in rows:
            model.train(train)
            seconds = seconds_per_call(lambda: run(model, train, amp), rounds=sizes.bench_rounds,
                                       warmup=2, device=ctx.device)
            sec.figures[f'{name}_{row}_img_s'] = batch / seconds
        model.eval()
        compiled = torch.compile(model)
        start = time.perf_counter()
        run(compiled, False, False)
        sec.figures[f'{name}_compile_s'] = time.perf_counter() - start
        seconds = seconds_per_call(lambda: run(compiled, False, False),
                                   rounds=sizes.bench_rounds, warmup=1, device=ctx.device)
        sec.figures[f'{name}_infer_compiled_img_s'] = batch / seconds
        model.cpu()
        free_device_memory()
    if 'timm' in models:
        for row in ('infer_eager', 'infer_amp', 'infer_compiled', 'train_eager', 'train_amp'):
            sec.figures[f'{row}_ours_over_timm'] = \
                sec.figures[f'ours_{row}_img_s'] / sec.figures[f'timm_{row}_img_s']


# name -> (function, devices it runs on)
SECTIONS = {
    'parity': (check_parity, ('cuda', 'cpu')),
    'word_attention': (check_word_attention, ('cuda', 'cpu')),
    'triton_resources': (check_triton_resources, ('cuda', 'cpu')),
    'mask_rcnn': (check_mask_rcnn, ('cuda', 'cpu')),
    'toy_det_amp_float16': (lambda sec: check_toy(sec, 'det', 'float16'), ('cuda', )),
    'toy_det_amp_bfloat16': (lambda sec: check_toy(sec, 'det', 'bfloat16',
                                                   TORCHVISION_ROI_ALIGN), ('cuda', )),
    'toy_det_fp32': (lambda sec: check_toy(sec, 'det'), ('cpu', )),
    # a CPU's AMP run (the detector's mmcv ops take no bf16 there); a GPU runs the detector's
    'toy_seg_amp_bfloat16': (lambda sec: check_toy(sec, 'seg', 'bfloat16'), ('cpu', )),
    'throughput': (check_throughput, ('cuda', 'cpu')),
}


# ------------------------------------------------------------------------------ report
def environment(device):
    env = dict(python=platform.python_version(), torch=torch.__version__, device=device,
               threads=torch.get_num_threads())
    if device != 'cpu':
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    for package in ('triton', 'timm', 'mmcv', 'mmdet', 'mmengine'):
        try:
            env[package] = __import__(package).__version__
        except Exception:  # a missing or broken package is a fact to report, not a failure
            env[package] = None
    try:
        env['commit'] = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO_ROOT,
                                       capture_output=True, text=True).stdout.strip() or None
    except OSError:
        env['commit'] = None
    return env


def fmt(value):
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, list):  # the JSON has all of a long list
        return '[' + ', '.join(fmt(v) for v in value[:4]) + (', ...' if value[4:] else '') \
            + ']'
    if isinstance(value, dict):
        return ', '.join(f'{key} {fmt(v)}' for key, v in value.items())
    return str(value)


def markdown(report):
    env = report['env']
    lines = [f'# GPU check on {env.get("gpu") or "the CPU"}'
             + (' (small sizes)' if report['small'] else ''), '',
             ', '.join(f'{k} {v}' for k, v in env.items() if v is not None), '',
             '| section | status | seconds |', '|---|---|---|']
    for name, sec in report['sections'].items():
        lines.append(f'| {name} | {sec["status"]} | {fmt(sec.get("seconds"))} |')
    targets = [(name, t) for name, sec in report['sections'].items() for t in sec['targets']]
    if targets:
        lines += ['', '| target | value | bound | met |', '|---|---|---|---|']
        for name, t in targets:
            met = {True: 'yes', False: '**no**', None: 'n/a (GPU target)'}[t['met']]
            lines.append(f'| {name}: {t["name"]} | {fmt(t["value"])} | {t["relation"]} '
                         f'{fmt(t["bound"])} | {met} |')
    for name, sec in report['sections'].items():
        lines += ['', f'## {name}: {sec["status"]}', '']
        if sec.get('error'):
            lines += ['```', sec['error'].rstrip(), '```', '']
        if sec['figures']:
            lines += ['| figure | value |', '|---|---|']
            lines += [f'| {k} | {fmt(v)} |' for k, v in sec['figures'].items()]
    return '\n'.join(lines) + '\n'


def write_report(report, out_dir):
    with open(osp.join(out_dir, 'gpu_check.json'), 'w') as f:
        json.dump(report, f, indent=1)
    with open(osp.join(out_dir, 'gpu_check.md'), 'w') as f:
        f.write(markdown(report))


# ------------------------------------------------------------------------------ main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out-dir', required=True, help='where gpu_check.json/.md go')
    parser.add_argument('--work-dir', help='scratch: toy data, training runs, predictions '
                        '(default: OUT_DIR/work)')
    parser.add_argument('--device', default=None,
                        help='cuda, cuda:N or cpu; defaults to cuda when there is one')
    parser.add_argument('--small', action='store_true', help='small sizes (the CPU test)')
    parser.add_argument('--sections', nargs='+', choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    args.device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: this machine has no CUDA device; use '
                     f'--device cpu --small')
    if torch.device(args.device).type not in ('cuda', 'cpu'):
        parser.error(f'--device must be cuda, cuda:N or cpu, got {args.device}')
    return args


def main(argv=None):
    """Runs the sections; returns the report (also written to ``--out-dir``)."""
    args = parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    ctx = SimpleNamespace(device=args.device, cuda=args.device != 'cpu',
                          work_dir=args.work_dir or osp.join(args.out_dir, 'work'),
                          sizes=SIZES['small' if args.small else 'full'])
    report = dict(small=args.small, env=environment(args.device), sections={})
    for name in args.sections:
        check, devices = SECTIONS[name]
        if torch.device(args.device).type not in devices:
            continue
        sec = Section(ctx)
        print(f'gpu_check: {name}...', flush=True)
        start = time.perf_counter()
        try:
            check(sec)
            status, error = 'ok', None
        except Exception:  # recorded: one broken section must not lose the others' figures
            status, error = 'failed', traceback.format_exc()[-4000:]
            print(error, flush=True)
        report['sections'][name] = dict(status=status, seconds=time.perf_counter() - start,
                                        figures=sec.figures, targets=sec.targets, error=error)
        free_device_memory()
        write_report(report, args.out_dir)
        print(f'gpu_check: {name} {status} in {report["sections"][name]["seconds"]:.1f} s',
              flush=True)
    print(markdown(report))
    return report


if __name__ == '__main__':
    result = main()
    missed = [t for s in result['sections'].values() for t in s['targets'] if t['met'] is False]
    failed = [n for n, s in result['sections'].items() if s['status'] != 'ok']
    sys.exit(1 if failed or missed else 0)
