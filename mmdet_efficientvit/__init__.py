"""mmdet-efficientvit: Microsoft's EfficientViT (CVPR 2023) for MMDetection 3.x.

Importing the package checks the installed stack, allow-lists the globals that mmengine/mmdet
checkpoints need for ``torch.load(weights_only=True)``, and registers every module of ours into
mmdet's registries (so ``custom_imports=dict(imports=['mmdet_efficientvit'])`` is all a config needs).
"""
from .compat import allow_checkpoint_globals, check_environment

check_environment()
allow_checkpoint_globals()

from . import datasets, engine, models  # noqa: E402,F401  (registers modules)

__version__ = '0.1.0'
