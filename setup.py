import platform

try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension
except ImportError:
    # pip's isolated build environment has no torch: the kernels must be built against the
    # torch they will run with, the environment's own.
    raise SystemExit('tnt_backbone builds its C++ kernels against the installed torch: install '
                     'torch first, then run pip with --no-build-isolation') from None
from setuptools import find_packages, setup


def read_requirements(name):
    with open(f'requirements/{name}.txt') as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


def cpu_flags():
    """Compiler flags for the CPU kernels (math flags as torch builds itself).

    The kernels compute with 8-float vectors (GCC/Clang vector extensions), which become AVX2/FMA
    instructions when the building CPU has them, as every x86-64 CPU these kernels target does
    (the extension is built on the machine that runs it, by ``pip install -e .``), and pairs of
    SSE instructions otherwise.
    """
    flags = ['-O3', '-fopenmp', '-fno-trapping-math', '-fno-math-errno']
    if platform.machine() in ('x86_64', 'AMD64'):
        try:
            with open('/proc/cpuinfo') as f:
                cpu = set(f.read().split())
        except OSError:
            cpu = set()
        if {'avx2', 'fma'} <= cpu:
            flags += ['-mavx2', '-mfma']
    return flags


setup(
    name='tnt_backbone',
    version='0.1.0',
    description='TNT (Transformer iN Transformer) backbone for OpenMMLab detection, '
    'segmentation and classification',
    packages=find_packages(include=['tnt_backbone', 'tnt_backbone.*']),
    # CPU kernels only: the GPU path is Triton (Python, compiled by Triton at run time), so no
    # CUDA sources and no CUDAExtension; .cu sources, when there are some, would need one.
    ext_modules=[
        CppExtension('tnt_backbone._ext', ['tnt_backbone/ops/csrc/word_attention.cpp',
                                           'tnt_backbone/ops/csrc/gelu.cpp',
                                           'tnt_backbone/ops/csrc/layer_norm.cpp'],
                     extra_compile_args=cpu_flags(), extra_link_args=['-fopenmp'])
    ],
    cmdclass={'build_ext': BuildExtension},
    python_requires='>=3.10',
    # torch and the OpenMMLab stack (requirements/build.txt, mminstall.txt) are not listed: in an
    # environment that has them, often CUDA builds, pip would replace or rebuild them.
    install_requires=read_requirements('runtime'),
    license='Apache-2.0',
)
