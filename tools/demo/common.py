"""What the three demos share: generate toy data once, train with tools/train.py (resuming),
evaluate the final checkpoint with tools/test.py, and print a framed summary."""
import os.path as osp
import shlex
import subprocess
import sys

from tnt_backbone.apis import evaluate, test_parser

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd):
    """Runs ``cmd`` from the repository root after printing it; ``python`` is this Python."""
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    subprocess.run([sys.executable] + cmd[1:] if cmd[0] == 'python' else cmd, check=True,
                   cwd=ROOT)


def ensure_data(generator, data_root, present):
    """Runs ``tools/data/<generator> --out data_root`` unless ``present`` says it is there."""
    if present:
        print(f'Toy dataset found in {data_root} (delete it to regenerate).')
    else:
        run(['python', f'tools/data/{generator}', '--out', data_root])


def train_and_evaluate(config, work_dir, show_dir=None):
    """Trains ``config`` (an interrupted run continues, a finished one is not retrained), then
    evaluates its last checkpoint. Returns (checkpoint path, metrics dict)."""
    run(['python', 'tools/train.py', config, '--work-dir', work_dir, '--resume'])
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        checkpoint = f.read().strip()
    cmd = ['python', 'tools/test.py', config, checkpoint, '--work-dir', work_dir]
    if show_dir:
        cmd += ['--show-dir', show_dir]
    print(f'\n$ {shlex.join(cmd)}', flush=True)
    # in this process, to get the metrics dict back
    return checkpoint, evaluate(test_parser().parse_args(cmd[2:]))


def print_summary(lines):
    print('\n' + '=' * 72)
    print('\n'.join(lines))
    print('=' * 72)
