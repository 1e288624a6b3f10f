"""tools/install.sh on CUDA and CPU machines, and the install into an existing environment.

install.sh reads the venv's torch (CUDA build or not, visible GPUs, CUDA toolkit) to decide
whether mmcv gets its CUDA ops. The fast tests give it the facts of other machines through a
stand-in torch package and run it in dry-run mode, which prints the commands it would run.
The slow test installs the project, as the README tells users who already have torch, mmcv,
mmdet and mmseg, into a second venv that sees this environment's packages, and checks that
their torch and mmcv stay as they were while our kernel is built and runs.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT

INSTALL_SH = os.path.join(REPO_ROOT, 'tools', 'install.sh')
# The README's command for an environment that has the stack already.
EXISTING_ENV_COMMAND = 'pip install --no-build-isolation --use-pep517 -e .'
STACK_SITE = sysconfig.get_paths()['purelib']  # this environment's torch, mmcv, mmdet, mmseg
# What a user's shell may set that would change the branch install.sh takes.
DECIDING_VARS = ('TNT_CUDA', 'TORCH_CUDA_ARCH_LIST', 'FORCE_CUDA', 'CUDA_HOME', 'CUDA_PATH',
                 'CUDA_VISIBLE_DEVICES', 'PYTHONPATH', 'TNT_INSTALL_DRY_RUN')


def test_readme_gives_the_tested_command():
    with open(os.path.join(REPO_ROOT, 'README.md')) as f:
        assert f'\n{EXISTING_ENV_COMMAND}\n' in f.read()


def make_venv(path, with_stack):
    """A new venv at ``path`` -> its site-packages. ``with_stack``: its imports (and pip) also
    see this environment's packages, as in an environment that has the stack installed already.
    """
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    site = Path(subprocess.run([path / 'bin' / 'python', '-c', 'import sysconfig; print('
                                'sysconfig.get_paths()["purelib"])'], check=True,
                               capture_output=True, text=True).stdout.strip())
    if with_stack:
        (site / 'stack.pth').write_text(STACK_SITE + '\n')
    return site


@pytest.fixture(scope='module')
def stack_venv(tmp_path_factory):
    venv = tmp_path_factory.mktemp('install') / 'venv'
    make_venv(venv, with_stack=True)
    return venv


def fake_torch(path, version, cuda, gpu_archs, cuda_home):
    """A stand-in torch package with what install.sh's probe reads: a CUDA build of torch
    (``cuda`` its version, None for a CPU build), the GPUs it sees as (major, minor) compute
    capabilities, and the CUDA toolkit its extension builder finds (None: none)."""
    (path / 'torch' / 'utils').mkdir(parents=True)
    (path / 'torch' / '__init__.py').write_text(textwrap.dedent(f'''\
        from types import SimpleNamespace
        __version__ = {version!r}
        version = SimpleNamespace(cuda={cuda!r})
        cuda = SimpleNamespace(device_count=lambda: {len(gpu_archs)},
                               get_device_capability={gpu_archs!r}.__getitem__)
    '''))
    (path / 'torch' / 'utils' / '__init__.py').write_text('')
    (path / 'torch' / 'utils' / 'cpp_extension.py').write_text(f'CUDA_HOME = {cuda_home!r}\n')
    return path


def dry_run(venv, **env):
    base = {k: v for k, v in os.environ.items() if k not in DECIDING_VARS}
    return subprocess.run(['bash', INSTALL_SH], capture_output=True, text=True, env={
        **base, 'VENV': str(venv), 'TNT_INSTALL_DRY_RUN': '1', 'PIP_CACHE_DIR': '/pip-cache',
        **env})


def mmcv_build_line(result):
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if 'mmcv==' in line]
    assert len(lines) == 1 and lines[0].startswith('+ env '), result.stdout
    assert '--no-build-isolation' in lines[0] and '--force-reinstall' in lines[0]
    return lines[0]


CUDA_12 = dict(version='2.13.0+cu128', cuda='12.8')
CPU_TORCH = dict(version='2.13.0+cpu', cuda=None)


@pytest.mark.parametrize('torch_facts,env,variant', [
    # A GPU machine with the toolkit: built for its GPUs (torch's default).
    (dict(**CUDA_12, gpu_archs=[(9, 0)], cuda_home='/usr/local/cuda'), {}, 'cuda12.8-sm9.0'),
    # A build machine without a GPU: for the GPUs named.
    (dict(**CUDA_12, gpu_archs=[], cuda_home='/usr/local/cuda'),
     {'TORCH_CUDA_ARCH_LIST': '8.0;9.0+PTX'}, 'cuda12.8-sm8.0_9.0+PTX'),
])
def test_cuda_branch_builds_mmcv_with_cuda_ops(tmp_path, stack_venv, torch_facts, env, variant):
    fake = fake_torch(tmp_path, **torch_facts)
    result = dry_run(stack_venv, PYTHONPATH=str(fake), **env)
    build = mmcv_build_line(result)
    assert 'FORCE_CUDA=1' in build.split()
    assert 'CUDA_VISIBLE_DEVICES=' not in build
    # A cache of its own: pip's would hand out a CPU-only wheel of the same name and version.
    assert f'--cache-dir /pip-cache/tnt-mmcv/torch2.13.0+cu128-{variant} ' in build
    assert f'+ check that mmcv.ops has the {variant} ops' in result.stdout


@pytest.mark.parametrize('torch_facts,env', [
    # PyPI's torch on a Linux machine without GPU or toolkit is a CUDA build too.
    (dict(**CUDA_12, gpu_archs=[], cuda_home=None), {}),
    # A CPU build of torch, with nvcc at hand (as on this project's machines).
    (dict(**CPU_TORCH, gpu_archs=[], cuda_home=None), {}),
    # The user's choice on a GPU machine; FORCE_CUDA=1 as mmcv's Docker images set it.
    (dict(**CUDA_12, gpu_archs=[(8, 0)], cuda_home='/usr/local/cuda'),
     {'TNT_CUDA': '0', 'FORCE_CUDA': '1'}),
])
def test_cpu_branch_builds_mmcv_without_cuda(tmp_path, stack_venv, torch_facts, env):
    fake = fake_torch(tmp_path, **torch_facts)
    result = dry_run(stack_venv, PYTHONPATH=str(fake), **env)
    build = mmcv_build_line(result).split()
    # mmcv builds CUDA ops when torch sees a GPU or FORCE_CUDA=1: both are turned off.
    assert 'FORCE_CUDA=0' in build and 'CUDA_VISIBLE_DEVICES=' in build
    assert 'FORCE_CUDA=1' not in build
    assert f'/pip-cache/tnt-mmcv/torch{torch_facts["version"]}-cpu' in build
    assert '+ check that mmcv.ops has the cpu ops' in result.stdout


def test_cpu_build_of_torch_takes_the_cpu_branch_with_a_toolkit_at_hand(tmp_path, stack_venv):
    """The real probe on this environment's torch, a CPU build, with nvcc on PATH and CUDA_HOME
    set, as on this project's machines."""
    if torch.version.cuda is not None:
        pytest.skip('this environment has a CUDA build of torch; the cases above fake one')
    (tmp_path / 'bin').mkdir()
    (tmp_path / 'bin' / 'nvcc').write_text('#!/bin/sh\n')
    (tmp_path / 'bin' / 'nvcc').chmod(0o755)
    result = dry_run(stack_venv, CUDA_HOME=str(tmp_path),
                     PATH=f'{tmp_path / "bin"}:{os.environ["PATH"]}')
    assert result.returncode == 0, result.stderr
    assert f'mmcv ops: CPU only (torch {torch.__version__}, its CUDA: none' in result.stdout
    # This environment's mmcv has the CPU ops: not rebuilt.
    assert 'mmcv==' not in result.stdout
    assert '+ check that mmcv.ops has the cpu ops' in result.stdout


@pytest.mark.parametrize('torch_facts,env,error', [
    (dict(**CUDA_12, gpu_archs=[(9, 0)], cuda_home=None), {},
     'no CUDA toolkit (CUDA_HOME, nvcc on PATH or /usr/local/cuda)'),
    (dict(**CUDA_12, gpu_archs=[], cuda_home='/usr/local/cuda'), {},
     'set TORCH_CUDA_ARCH_LIST to the compute capabilities'),
    (dict(**CPU_TORCH, gpu_archs=[], cuda_home=None), {'TNT_CUDA': '1'},
     'is a CPU build, so mmcv cannot have CUDA ops'),
    (dict(**CPU_TORCH, gpu_archs=[], cuda_home=None), {'TNT_CUDA': 'yes'},
     "TNT_CUDA must be 1 (mmcv with CUDA ops), 0 (CPU ops only) or unset, got 'yes'"),
])
def test_impossible_cuda_builds_are_refused(tmp_path, stack_venv, torch_facts, env, error):
    result = dry_run(stack_venv, PYTHONPATH=str(fake_torch(tmp_path, **torch_facts)), **env)
    assert result.returncode == 1
    assert error in result.stderr
    assert 'mmcv==' not in result.stdout


def test_build_without_torch_says_how(tmp_path):
    """What pip's build isolation (the default) gives setup.py: an environment without torch."""
    make_venv(tmp_path / 'bare', with_stack=False)
    result = subprocess.run([tmp_path / 'bare' / 'bin' / 'python', 'setup.py', '--name'],
                            cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert 'install torch first, then run pip with --no-build-isolation' in result.stderr


def env_facts(python, cwd):
    script = ('import torch, mmcv; print(torch.__version__, torch.__file__, mmcv.__version__, '
              'mmcv.__file__)')
    return subprocess.run([python, '-c', script], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.split()


@pytest.mark.slow
def test_existing_environment_keeps_its_torch_and_mmcv(tmp_path):
    site = make_venv(tmp_path / 'env', with_stack=True)
    python = tmp_path / 'env' / 'bin' / 'python'
    src = tmp_path / 'tnt-dense'  # other processes use the kernel built in the repository
    src.mkdir()
    shutil.copy(os.path.join(REPO_ROOT, 'setup.py'), src)
    built = shutil.ignore_patterns('*.so', '__pycache__', 'build', '*.egg-info')
    for folder in ('requirements', 'tnt_backbone'):
        shutil.copytree(os.path.join(REPO_ROOT, folder), src / folder, ignore=built)
    before, site_before = env_facts(python, tmp_path), set(os.listdir(site))

    result = subprocess.run([python, '-m', *EXISTING_ENV_COMMAND.split()], cwd=src,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert env_facts(python, tmp_path) == before
    assert before[1].startswith(STACK_SITE) and before[3].startswith(STACK_SITE)
    added = set(os.listdir(site)) - site_before - {'__pycache__'}  # of the editable finder
    assert added and all('tnt_backbone' in name for name in added), added
    # Nor would pip touch them in an environment with other versions of them.
    metadata = (site / 'tnt_backbone-0.1.0.dist-info' / 'METADATA').read_text()
    required = {re.match(r'Requires-Dist: ([\w.-]+)', line).group(1).lower()
                for line in metadata.splitlines() if line.startswith('Requires-Dist:')}
    assert required and not required & {'torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation'}

    check = textwrap.dedent('''\
        import torch
        import torch.nn.functional as F
        import tnt_backbone
        from tnt_backbone import _ext
        torch.manual_seed(0)
        qkv, heads, scale = torch.randn(5, 16, 72), 4, 6 ** -0.5
        out = torch.ops.tnt_backbone.word_attention(qkv, heads, scale)
        q, k, v = qkv.unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)
        ref = F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2)
        torch.testing.assert_close(out, ref.reshape(5, 16, -1), rtol=0, atol=1e-5)
        with torch.no_grad():
            feats = tnt_backbone.TNT(arch='tiny').eval()(torch.randn(1, 3, 64, 80))
        print(_ext.__file__)
        print(*[tuple(f.shape) for f in feats])
    ''')
    result = subprocess.run([python, '-c', check], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    ext_file, shapes = result.stdout.splitlines()[-2:]  # after the backbone's log lines
    assert ext_file.startswith(str(src / 'tnt_backbone'))
    assert shapes == ' '.join(['(1, 192, 4, 5)'] * 4)
