"""Packaging for mmdet-efficientvit (the version and dependency ranges live in
``mmdet_efficientvit/version.py``)."""
import os.path as osp

from setuptools import find_packages, setup


def version_info() -> dict:
    """``mmdet_efficientvit/version.py`` executed on its own (importing the package needs the stack)."""
    namespace: dict = {}
    with open(osp.join(osp.dirname(osp.abspath(__file__)), 'mmdet_efficientvit', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace


info = version_info()
setup(
    name='mmdet-efficientvit',
    version=info['__version__'],
    description="Microsoft's EfficientViT (CVPR 2023) backbone and FPN neck for MMDetection 3.x",
    packages=find_packages(include=['mmdet_efficientvit', 'mmdet_efficientvit.*']),
    python_requires='>=3.9',
    install_requires=[info['requirement'](name) for name, _, _ in info['SUPPORTED']] + [
        'timm>=1.0.15',
        'safetensors',
        'huggingface_hub',
        'pycocotools',
    ],
)
