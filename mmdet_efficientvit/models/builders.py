"""Build the models that the analysis and deployment tools measure, without downloading anything.

Below both ``analysis/`` (FLOPs, benchmarks) and ``deployment/`` (ONNX export), and their tools,
so that all of them measure and export exactly the same models.
"""
import copy
import logging
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from ..errors import ConfigError


def check_detector_config(cfg: Config, name: str) -> None:
    """Refuse (``ConfigError``, one line) a config whose ``model`` is not one of mmdet's detectors,
    before anything is built."""
    from mmdet.models.detectors import BaseDetector
    from mmdet.registry import MODELS
    model = cfg.get('model')
    kind = model.get('type') if isinstance(model, dict) else None
    cls = MODELS.get(kind) if isinstance(kind, str) else None
    if not (isinstance(cls, type) and issubclass(cls, BaseDetector)):
        raise ConfigError(f'{name} is not a detector config (its model type is {kind!r}, not one of '
                          "mmdet's detectors): pass a detector config such as "
                          'mmdet_efficientvit::retinanet_evit_m4_fpn_1x_coco.py')


def build_backbone(arch: str = 'm4',
                   window_size: Sequence[int] = (7, 7, 7),
                   deploy: bool = False,
                   checkpoint: Optional[str] = None) -> nn.Module:
    """Build our ``EfficientViT`` backbone in eval mode (random weights unless ``checkpoint``)."""
    from mmdet_efficientvit.models.backbones import EfficientViT
    init_cfg = None if checkpoint is None else dict(type='Pretrained', checkpoint=checkpoint)
    model = EfficientViT(arch=arch, window_size=tuple(window_size), deploy=deploy, init_cfg=init_cfg)
    if checkpoint is not None:
        model.init_weights()
    return model.eval()


def build_detector(config: Union[str, Config],
                   checkpoint: Optional[str] = None,
                   cfg_options: Optional[dict] = None) -> nn.Module:
    """mmdet's ``init_detector`` on the CPU, plus what it lacks for checks and exports.

    ``config`` may be a shipped name (``mmdet_efficientvit::...``, ``mmdet::...``); its
    ``custom_imports`` are imported. Nothing is downloaded: the backbone's and the detector's
    ``init_cfg`` are dropped. Without ``checkpoint`` the weights are those of mmdet's initialisers
    (e.g. RetinaNet's prior-probability bias; ``init_detector`` leaves PyTorch's defaults), applied
    without their per-parameter log; ``checkpoint`` is loaded strictly (a missing or unexpected key
    is an error, never a silently random layer), and ``dataset_meta`` is the checkpoint's (empty
    when it has none).
    """
    from mmdet.apis import init_detector
    from mmengine.runner import load_checkpoint
    from mmengine.utils import import_modules_from_strings

    import mmdet_efficientvit  # noqa: F401  (registers our modules)
    from mmdet_efficientvit.resources import load_config

    cfg = load_config(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:  # merged here: init_detector keeps the backbone's init_cfg when given options
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    cfg.model.pop('init_cfg', None)
    # init_detector drops the backbone's init_cfg; it warns (and resets the warning filters) that
    # the classes are COCO's for want of a checkpoint, which is meaningless here
    with warnings.catch_warnings(record=True):
        model = init_detector(cfg, palette='random', device='cpu')  # 'random': no dataset is built
    if checkpoint is None:
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        meta = load_checkpoint(model, checkpoint, map_location='cpu', strict=True).get('meta') or {}
        # what the checkpoint says, never init_detector's COCO default (mmdet 2.x kept CLASSES)
        model.dataset_meta = dict(meta.get('dataset_meta')
                                  or ({'classes': meta['CLASSES']} if meta.get('CLASSES') else {}))
    return model.eval()


def build_backbone_and_neck(arch: str = 'm4') -> Tuple[nn.Module, nn.Module]:
    """Our backbone and RetinaNet neck as the configs build them (``configs/_base_/models/
    efficientvit_m4_fpn.py``: BatchNorms frozen by ``norm_eval``, FPN with one transposed-conv level),
    for ``arch``, with random weights (no checkpoint) and without building a detector (no mmcv ops)."""
    from mmdet.registry import MODELS

    import mmdet_efficientvit  # noqa: F401  (registers our modules)
    from mmdet_efficientvit.resources import config_path, load_config

    base = load_config(config_path('_base_/models/efficientvit_m4_fpn.py'))
    backbone_cfg, neck_cfg = ({k: v for k, v in part.items() if k != '_delete_'}
                              for part in (base.evit_backbone, base.retinanet_neck))
    backbone = MODELS.build(dict(backbone_cfg, arch=arch, init_cfg=None))
    neck = MODELS.build(dict(neck_cfg, in_channels=list(backbone.embed_dims)))
    return backbone, neck
