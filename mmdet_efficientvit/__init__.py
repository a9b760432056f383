"""mmdet-efficientvit: Microsoft's EfficientViT (CVPR 2023) for MMDetection 3.x.

Importing the package checks the installed stack (upstream OpenMMLab or OneDL), allow-lists the globals
that mmengine/mmdet checkpoints need for ``torch.load(weights_only=True)`` (and keeps onedl-mmengine from
falling back to ``weights_only=False``), registers every module of ours into mmdet's registries (so
``custom_imports=dict(imports=['mmdet_efficientvit'])`` is all a config needs), teaches mmengine's
``CheckpointLoader`` the ``efficientvit://`` and ``hf-hub:`` checkpoint names, and lets mmengine resolve
the shipped configs as ``mmdet_efficientvit::...`` (``resources``).
"""
from .compat import allow_checkpoint_globals, check_environment, refuse_unsafe_fallback
from .version import __version__

check_environment()
allow_checkpoint_globals()
refuse_unsafe_fallback()

from . import datasets, engine, models, registry  # noqa: E402,F401  (registers modules)
from .models.utils.checkpoint import register_checkpoint_schemes  # noqa: E402
from .resources import register_config_scope  # noqa: E402

register_checkpoint_schemes()
register_config_scope()

__all__ = ['__version__']
