"""Packaging for mmdet-efficientvit (the dependency ranges are the ones CI tests)."""
from setuptools import find_packages, setup

setup(
    name='mmdet-efficientvit',
    version='0.1.0',
    description="Microsoft's EfficientViT (CVPR 2023) backbone and FPN neck for MMDetection 3.x",
    packages=find_packages(include=['mmdet_efficientvit', 'mmdet_efficientvit.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.1',
        'mmengine>=0.10.0,<0.11',
        'mmcv>=2.0.0,<2.2.0',
        'mmdet>=3.0.0,<3.4.0',
        'timm>=1.0.15',
        'safetensors',
        'huggingface_hub',
        'pycocotools',
    ],
)
