"""Time and peak memory of one training iteration of a whole detection/segmentation config.

    python tools/analysis/train_iter_cost.py configs/detection/mask-rcnn_tnt-s-p16_fpn_1x_coco.py \
        --shape 800 1333 --batch 2
    python tools/analysis/train_iter_cost.py \
        configs/segmentation/upernet_tnt-s-p16_8xb2-160k_ade20k-512x512.py --shape 512 512
    python tools/analysis/train_iter_cost.py configs/detection/mask-rcnn_tnt-s-p16_fpn_1x_coco.py \
        --compare mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py --shape 800 1333 --batch 1

With ``--compare OTHER`` (a path, or ``mmdet::``/``mmseg::`` for a config shipped in that
package) both configs are measured alternately, each in a fresh process, ``--rounds`` times;
the medians of both and their ratios are reported.

``--split`` also reports where the time and the activation memory go (data preprocessing,
backbone, neck, heads, their backward passes, the optimizer step; see
``tnt_backbone.apis.TrainStepSplit``), side by side with ``--compare``. ``--profile`` reports
one more iteration under torch.profiler by kind of op (matrix multiplies with their GFLOP/s,
convolutions, SDPA's fused attention, the rest; ``tnt_backbone.apis.profile_ops``): how fast
each model runs the arithmetic that it has to do.

The model is built from the config without its pretrained checkpoint (random weights cost the
same) and fed a generated batch of the given size (detection: 5 boxes with masks per image;
segmentation: a random label map), both from a fixed seed, so that every process does the same
work (the RoI heads' share follows the random proposals). One iteration = data preprocessing,
forward with losses, backward and the optimizer step. Reported: median seconds over
``--iters`` iterations after one warm-up, and the growth of the process's peak RSS over the
built model's.
"""
import argparse
import json
import statistics
import subprocess
import sys

import torch
from mmengine.config import DictAction

from tnt_backbone.apis import (TrainStepSplit, config_train_step, peak_rss_mib, profile_ops,
                               seconds_per_call)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='config overrides (of CONFIG only), e.g. model.backbone.with_cp=True')
    parser.add_argument('--compare', metavar='OTHER', help='a second config, measured alternately')
    parser.add_argument('--rounds', type=int, default=3, help='alternations with --compare')
    parser.add_argument('--split', action='store_true',
                        help='time and activation memory of backbone, neck and heads')
    parser.add_argument('--profile', action='store_true',
                        help='one more iteration profiled: time by kind of op, matmul GFLOP/s')
    parser.add_argument('--json', action='store_true', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure_in_child(config, args, cfg_options):
    cmd = [sys.executable, __file__, config, '--shape', *map(str, args.shape), '--batch',
           str(args.batch), '--iters', str(args.iters), '--json'] + ['--split'] * args.split \
        + ['--profile'] * args.profile
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compare(args):
    """Alternates CONFIG and OTHER in fresh processes; prints medians and ratios."""
    cfg_options = [f'{k}={v}' for k, v in args.cfg_options.items()]
    runs = {args.config: [], args.compare: []}
    for r in range(args.rounds):
        for config in runs:
            runs[config].append(measure_in_child(
                config, args, cfg_options if config == args.config else []))
            print(f'round {r + 1}: {config}: {runs[config][-1]["seconds"]:.1f} s, '
                  f'+{runs[config][-1]["peak_gib"]:.2f} GiB', flush=True)
    med = {c: {k: statistics.median(m[k] for m in ms) for k in ('seconds', 'peak_gib')}
           for c, ms in runs.items()}
    print(f'{args.shape[0]}x{args.shape[1]}, batch {args.batch}, medians of {args.rounds} '
          f'alternating rounds:')
    for c, m in med.items():
        print(f'  {c}: {m["seconds"]:.1f} s per iteration, peak +{m["peak_gib"]:.2f} GiB')
    a, b = med[args.config], med[args.compare]
    print(f'  ratio: time {a["seconds"] / b["seconds"]:.2f}x, peak memory '
          f'{a["peak_gib"] / b["peak_gib"]:.2f}x')
    for part in ('split', 'ops'):
        if part in runs[args.config][0]:
            print_split([{k: statistics.median(m[part].get(k, 0.) for m in ms)
                          for k in dict.fromkeys(k for m in ms for k in m[part])}
                         for ms in runs.values()], list(runs))


def print_split(splits, names):
    """One row per part, one column per config (medians; seconds, or MiB)."""
    keys = list(dict.fromkeys(k for split in splits for k in split))
    print(f'  {"":<28}' + ''.join(f'{n[-40:]:>42}' for n in names))
    for k in keys:
        unit = '' if k.endswith(('MiB', 'GFLOP/s')) else ' s'
        print(f'  {k:<28}' + ''.join(f'{split.get(k, 0.):>40.2f}{unit:<2}' for split in splits))


def main(argv=None):
    args = parse_args(argv)
    if args.compare:
        return compare(args)
    split = TrainStepSplit() if args.split else None
    step = config_train_step(args.config, args.batch, args.shape, args.cfg_options,
                             split=split)
    base = peak_rss_mib()
    seconds = seconds_per_call(step, rounds=args.iters)
    peak_gib = (peak_rss_mib() - base) / 1024
    result = dict(seconds=seconds, peak_gib=peak_gib)
    if split is not None:
        split.steps = split.steps[1:]  # the warm-up's first step allocates and is slower
        result['split'] = split.summary()
    if args.profile:
        ops, flops = profile_ops(step)
        result['ops'] = {f'{kind} (profiled)': s for kind, s in ops.items()}
        result['ops']['matrix multiplies GFLOP/s'] = \
            flops / ops['matrix multiplies'] / 1e9 if flops else 0.
    if args.json:
        print(json.dumps(result))
        return
    print(f'{args.config}: {args.shape[0]}x{args.shape[1]}, batch {args.batch}, '
          f'{torch.get_num_threads()} threads')
    print(f'  {seconds:.1f} s per training iteration, '
          f'peak memory +{peak_gib:.2f} GiB over the built model')
    for part in ('split', 'ops'):
        if part in result:
            print_split([result[part]], [args.config])


if __name__ == '__main__':
    main()
