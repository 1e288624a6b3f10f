from setuptools import find_packages, setup


def read_requirements(name):
    with open(f'requirements/{name}.txt') as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='tnt_backbone',
    version='0.1.0',
    description='TNT (Transformer iN Transformer) backbone for OpenMMLab detection, '
    'segmentation and classification',
    packages=find_packages(include=['tnt_backbone', 'tnt_backbone.*']),
    python_requires='>=3.10',
    install_requires=read_requirements('runtime'),
    license='Apache-2.0',
)
