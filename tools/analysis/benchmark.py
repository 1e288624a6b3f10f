"""Speed and peak memory of the TNT or PyramidTNT backbone, optionally side by side with the
reference implementation (timm's TNT, the official PyramidTNT).

Speed: the models run alternately in one process (shared machines drift by +-30 %), and the
median of the timed rounds is reported as img/s. Peak memory: each model runs alone in a fresh
process and the growth of its peak RSS over the loaded-model baseline is reported.

    python tools/analysis/benchmark.py --arch small --size 224 --batch 8 --mode train
    python tools/analysis/benchmark.py --size 512 --batch 2 --mode train --memory \
        --timm-path /tmp/ref:../shared/reference
    python tools/analysis/benchmark.py --dtype bf16 --timm-dtype fp32 --timm-path ...

``--compile`` runs both models (or ``--compile ours`` / ``timm``: one) through
``torch.compile`` (inductor); with ``--eager-too`` their eager selves run alongside, so one
process compares e.g. ours eager, ours compiled, timm eager and timm compiled::

    python tools/analysis/benchmark.py --mode train --compile --eager-too --timm-path ...

``--timm-path`` is where timm (and, because torchvision has no CPU build here, the torchvision
stub ``tvstub``) can be imported from; without it only tnt_backbone is measured.
``--model pyramid-tnt`` measures PyramidTNT at its training size (192 for tiny, else 256,
unless ``--size``) as a classifier backbone (pooled last stage); with ``--timm-path`` the
official ``pyramid_tnt.py`` is measured too, imported from that path as well::

    python tools/analysis/benchmark.py --model pyramid-tnt --arch small --mode train \
        --timm-path /tmp/ref:../shared/reference:DIR_OF_pyramid_tnt.py

``--profile`` then profiles a step of each model: its time by kind of op (matrix multiplies
with their GFLOP/s, convolutions, SDPA's fused attention, the rest), this CPU's matrix-multiply
peak, and the most ours could gain on the reference if its rest were free: the bound on an
implementation of the same function on this CPU.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

from tnt_backbone.apis import matmul_peak_gflops, peak_rss_mib, profile_ops

OFFICIAL_PYRAMID_NAMES = {'tiny': 'ptnt_ti_patch16_192', 'small': 'ptnt_s_patch16_256',
                          'medium': 'ptnt_m_patch16_256', 'base': 'ptnt_b_patch16_256'}
TIMM_NAMES = {('small', 'v2'): 'tnt_s_patch16_224', ('base', 'v2'): 'tnt_b_patch16_224',
              ('small', 'legacy'): 'tnt_s_legacy_patch16_224',
              ('base', 'legacy'): 'tnt_b_legacy_patch16_224'}


def build(variant, args):
    """Returns the model of ``variant`` ('ours' or 'timm', '-compiled' for its
    ``torch.compile`` -d self) in the ``--mode`` the run measures."""
    impl = variant.split('-')[0]
    if impl == 'timm':
        for p in reversed(args.timm_path.split(':')):
            sys.path.insert(0, p)
        import tvstub  # noqa: F401
        if args.model == 'pyramid-tnt':  # the official code, fixed to its training size
            import pyramid_tnt
            model = getattr(pyramid_tnt, OFFICIAL_PYRAMID_NAMES[args.arch])(num_classes=0)
        else:
            import timm
            model = timm.create_model(TIMM_NAMES[(args.arch, args.layout)], num_classes=0,
                                      img_size=tuple(args.size))
    elif args.model == 'pyramid-tnt':
        from tnt_backbone.models import PyramidTNT
        model = PyramidTNT(arch=args.arch, out_indices=(3,), out_type='avg_featmap',
                           with_attn_bias=not args.no_attn_bias)
    else:
        from tnt_backbone.models import TNT
        model = TNT(arch=args.arch, layout=args.layout, img_size=224, out_type=args.out_type,
                    out_indices=(-1,) if args.out_type == 'cls_token' else (2, 5, 8, 11),
                    window_size=args.window_size)
    model.train(args.mode == 'train')
    if variant.endswith('-compiled'):
        model = torch.compile(model, mode=args.compile_mode)
    return model


def variants(args):
    """The models to measure, e.g. ``['ours', 'ours-compiled', 'timm']``."""
    compiled = {'both': ('ours', 'timm'), None: ()}.get(args.compile, (args.compile,))
    out = []
    for impl in ['ours'] + (['timm'] if args.timm_path else []):
        if impl not in compiled or args.eager_too:
            out.append(impl)
        if impl in compiled:
            out.append(f'{impl}-compiled')
    return out


def autocast_dtype(variant, args):
    """None (fp32) or torch.bfloat16: ``--timm-dtype`` for timm, else ``--dtype``."""
    name = args.timm_dtype if variant.startswith('timm') and args.timm_dtype else args.dtype
    return torch.bfloat16 if name == 'bf16' else None


def step_fn(model, args, dtype=None):
    x = torch.randn(args.batch, 3, *args.size)

    def total(out):
        out = out if isinstance(out, (tuple, list)) else (out,)
        return sum(o.float().mean() for o in out)

    def step():
        if args.mode == 'train':
            with torch.autocast('cpu', dtype=dtype, enabled=dtype is not None):
                loss = total(model(x))
            loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), torch.autocast('cpu', dtype=dtype,
                                                        enabled=dtype is not None):
                model(x)
    return step


def time_side_by_side(steps, args):
    """img/s of each variant: (median, slowest, fastest) over the timed rounds."""
    names = list(steps)
    for _ in range(args.warmup):
        for s in steps.values():
            s()
    times = {v: [] for v in names}
    for _ in range(args.iters):
        for v, s in steps.items():
            t = time.perf_counter()
            s()
            times[v].append(time.perf_counter() - t)
    return {v: (args.batch / statistics.median(t), args.batch / max(t), args.batch / min(t))
            for v, t in times.items()}


def bf16_cosine(args):
    """Smallest per-image cosine similarity of our outputs under bf16 autocast vs fp32."""
    torch.manual_seed(0)
    model = build('ours', args).eval()
    x = torch.randn(args.batch, 3, *args.size)
    with torch.inference_mode():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = model(x)
    return min(torch.cosine_similarity(a.flatten(1), b.float().flatten(1)).min().item()
               for a, b in zip(ref, low))


def peak_memory_child(variant, args):
    step = step_fn(build(variant, args), args, autocast_dtype(variant, args))
    base = peak_rss_mib()
    for _ in range(2):
        step()
    print(json.dumps({'peak_mib': peak_rss_mib() - base}))


def peak_memory(variant, argv):
    out = subprocess.run([sys.executable, __file__, *argv, '--child-memory', variant],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])['peak_mib']


def report_profile(steps, speed, args, label):
    """Each variant's step by kind of op (``tnt_backbone.apis.profile_ops``), and how far ours
    could get ahead of the reference if all of its step but the shared compute-bound kernels
    were free."""
    print(f'profile of {args.profile} step(s) each (torch.profiler; ms per step, self time):')
    splits, totals = {}, {}
    for v, step in steps.items():
        split, flops = profile_ops(step, args.profile)
        total = sum(split.values())  # the profiled step's wall time
        splits[v], totals[v] = split, total
        parts = ', '.join(f'{k} {s * 1e3:.1f} ({s / total:.0%})' for k, s in split.items())
        gflops = flops / split['matrix multiplies'] / 1e9 if flops else 0.0
        print(f'{label(v):>15}: {total * 1e3:.1f}: {parts}; matrix multiplies at '
              f'{gflops:.0f} GFLOP/s')
    dtype = torch.bfloat16 if args.dtype == 'bf16' else torch.float32
    print(f'matrix-multiply peak here (2048^3, {str(dtype)[6:]}, {torch.get_num_threads()} '
          f'threads): {matmul_peak_gflops(dtype):.0f} GFLOP/s')
    for ours in names_of(steps, 'ours'):
        bound = splits[ours]['matrix multiplies'] + splits[ours]['convolutions'] + \
            splits[ours]['fused attention']
        for theirs in names_of(steps, 'timm'):
            print(f'{label(ours)} vs {label(theirs)}: at most {totals[theirs] / bound:.2f}x '
                  f'if all but its matrix multiplies, convolutions and fused attention were '
                  f'free (profiled {totals[theirs] / totals[ours]:.2f}x, timed '
                  f'{speed[ours][0] / speed[theirs][0]:.2f}x)')


def names_of(names, impl):
    """The variants of ``impl`` ('ours' or 'timm') among ``names``."""
    return [v for v in names if v.startswith(impl)]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='tnt', choices=['tnt', 'pyramid-tnt'])
    parser.add_argument('--arch', default='small', choices=['tiny', 'small', 'medium', 'base'])
    parser.add_argument('--layout', default='v2', choices=['v2', 'legacy'])
    parser.add_argument('--size', type=int, nargs='+', default=None, metavar='H [W]',
                        help='default: 224 for TNT, the training size for PyramidTNT')
    parser.add_argument('--no-attn-bias', action='store_true',
                        help='PyramidTNT without its learned attention biases')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--mode', default='infer', choices=['infer', 'train'])
    parser.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'])
    parser.add_argument('--timm-dtype', choices=['fp32', 'bf16'],
                        help='autocast dtype of the timm reference (default: --dtype)')
    parser.add_argument('--out-type', default='cls_token', choices=['cls_token', 'featmap'])
    parser.add_argument('--window-size', type=int, default=0)
    parser.add_argument('--compile', nargs='?', const='both', choices=['both', 'ours', 'timm'],
                        help='torch.compile both models, or the one named')
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile's mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument('--eager-too', action='store_true',
                        help='with --compile: also time the compiled models eager')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--memory', action='store_true', help='also measure peak memory')
    parser.add_argument('--profile', type=int, nargs='?', const=2, default=0, metavar='STEPS',
                        help='also profile STEPS (default 2) steps of each model: time by op '
                             'category, matrix-multiply GFLOP/s, the bound on the speed-up')
    parser.add_argument('--timm-path', default=None,
                        help='colon-separated path to import timm and tvstub from')
    parser.add_argument('--child-memory', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.size is None:
        args.size = [224 if args.model == 'tnt' else 192 if args.arch == 'tiny' else 256]
    args.size = (args.size * 2)[:2]
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child_memory:
        return peak_memory_child(args.child_memory, args)
    names = variants(args)
    if args.timm_path and args.model == 'tnt' and args.arch in ('tiny', 'medium'):
        sys.exit('timm has no TNT-Ti or TNT-M; compare small or base')
    print(f'{args.model}-{args.arch} {args.layout} {args.mode} {args.dtype} '
          f'{args.size[0]}x{args.size[1]} batch {args.batch} compile={args.compile} '
          f'threads={torch.get_num_threads()}')
    steps = {v: step_fn(build(v, args), args, autocast_dtype(v, args)) for v in names}
    speed = time_side_by_side(steps, args)
    mem = {v: peak_memory(v, argv) for v in names} if args.memory else {}
    ref = 'official' if args.model == 'pyramid-tnt' else 'timm'

    def label(variant):
        return variant.replace('timm', ref)
    for v in names:
        median, slowest, fastest = speed[v]
        line = f'{label(v):>15}: {median:8.3f} img/s'
        if v in mem:
            line += f'  peak +{mem[v]:8.1f} MiB'
        print(f'{line}  (rounds {slowest:.3f}-{fastest:.3f})')
    for ours in names_of(names, 'ours'):
        for theirs in names_of(names, 'timm'):
            print(f'{label(ours)} vs {label(theirs)}: speed-up '
                  f'{speed[ours][0] / speed[theirs][0]:.2f}x' + (
                      f', memory ratio {mem[ours] / mem[theirs]:.2f}' if mem else ''))
    if args.profile:
        report_profile(steps, speed, args, label)
    if args.dtype == 'bf16':
        print(f'bf16 vs fp32 outputs (ours): min cosine similarity {bf16_cosine(args):.6f}')


if __name__ == '__main__':
    main()
