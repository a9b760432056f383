"""mmdet-efficientvit: Microsoft's EfficientViT (CVPR 2023) for MMDetection 3.x.

Importing the package checks the installed stack (upstream OpenMMLab or OneDL), registers every module
of ours into mmdet's registries (so ``custom_imports=dict(imports=['mmdet_efficientvit'])`` is all a
config needs), makes checkpoint reading safe and teaches it our names (the allow-list that mmengine/mmdet
checkpoints need for ``torch.load(weights_only=True)``, no ``weights_only=False`` fallback on
onedl-mmengine or for http(s) URLs, and the ``efficientvit://`` and ``hf-hub:`` schemes of mmengine's
``CheckpointLoader``), and lets mmengine resolve the shipped configs as ``mmdet_efficientvit::...``
(``resources``).
"""
from .compat import check_environment
from .version import __version__

check_environment()

from . import datasets, engine, models, registry  # noqa: E402,F401  (registers modules)
from .models.utils.checkpoint import setup_checkpoint_loading  # noqa: E402
from .resources import register_config_scope  # noqa: E402

setup_checkpoint_loading()
register_config_scope()

__all__ = ['__version__']
