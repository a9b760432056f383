"""Build the models that the analysis and deployment tools measure, without downloading anything.

Below both ``analysis/`` (FLOPs, benchmarks) and ``deployment/`` (ONNX export), and their tools,
so that all of them measure and export exactly the same models.
"""
import copy
import logging
import re
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from ..errors import ConfigError

SizeLike = Union[int, str, Sequence[int]]


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


def parse_size(size: SizeLike) -> Tuple[int, int]:
    """Parse ``224``, ``'224'``, ``'800x1216'`` or ``(800, 1216)`` into ``(height, width)``."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, str):
        match = re.fullmatch(r'(\d+)(?:[x,](\d+))?', size.strip())
        if match is None:
            raise ValueError(f'cannot parse input size {size!r}: use H or HxW, e.g. 224 or 800x1216')
        h = int(match.group(1))
        return h, int(match.group(2) or h)
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) != 2:
        raise ValueError(f'input size must be H or (H, W), got {size}')
    return size  # type: ignore[return-value]


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
    """Build a detector from a config, in eval mode, without downloading anything.

    The backbone's ``init_cfg`` is dropped, so the weights are those of mmdet's initialisers
    (random, nothing downloaded) unless ``checkpoint`` is given, which is then loaded strictly.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmengine.utils import import_modules_from_strings

    import mmdet_efficientvit  # noqa: F401  (registers our modules)
    from mmdet_efficientvit.resources import load_config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    cfg = load_config(config) if isinstance(config, str) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    if 'backbone' in model_cfg:
        model_cfg.backbone.init_cfg = None
    model_cfg.pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        # mmdet's initialisers (e.g. RetinaNet's prior-probability bias), without the per-parameter log
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
    else:
        load_checkpoint(model, checkpoint, map_location='cpu', strict=True)
    return model.eval()


def image_data_samples(img: torch.Tensor) -> list:
    """One ``DetDataSample`` per image whose metainfo says the tensor is the (unscaled) image."""
    from mmdet.structures import DetDataSample
    h, w = img.shape[-2:]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    return [DetDataSample(metainfo=meta) for _ in range(img.shape[0])]


def _flatten(outputs) -> Tuple[torch.Tensor, ...]:
    if isinstance(outputs, torch.Tensor):
        return (outputs, )
    return tuple(t for item in outputs for t in _flatten(item))


class TensorModeDetector(nn.Module):
    """Any mmdet detector in ``tensor`` mode (``_forward``) with a tensor-tuple output.

    Single-stage detectors give their raw head maps (no NMS); two-stage ones include the RPN's
    proposal selection, as mmdet's own ``tensor`` mode does. Used for FLOP counting.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return _flatten(self.detector._forward(img, image_data_samples(img)))


class RawDetector(TensorModeDetector):
    """Backbone + neck + head of a single-stage detector, without post-processing (no NMS).

    ``forward(img)`` returns the raw maps as a flat tuple: the classification maps of every level,
    then the box-regression maps of every level (the layout ONNX export and timing need).
    """

    def __init__(self, detector: nn.Module):
        if not hasattr(detector, 'bbox_head'):
            raise TypeError(f'{type(detector).__name__} is not a single-stage detector (no bbox_head): '
                            'only single-stage detectors (RetinaNet, FCOS, ...) run without NMS')
        super().__init__(detector)

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return _flatten(self.detector.bbox_head(self.detector.extract_feat(img)))


class Backbone(nn.Module):
    """Give a model a tensor-tuple ``forward`` (e.g. timm's EfficientViT: its three stage maps)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if hasattr(self.model, 'forward_intermediates'):  # timm
            return tuple(self.model.forward_intermediates(img, intermediates_only=True))
        return tuple(self.model(img))


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, in place.

    Freshly initialised EfficientViT has zero-initialised BN weights in many residual branches, so
    random-weight parity checks would compare near-zero branches; this makes every branch count.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                    module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


# one image of this size gives the stride-64 maps 13x19 positions to measure BatchNorm statistics on
CALIBRATION_SIZE = (800, 1216)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``model(*inputs)``, in place.

    Random weights in eval mode otherwise shrink activations layer by layer (e.g. CSPNeXt with
    PyTorch's default init), until a head sees nearly constant maps and ties its scores; with
    measured statistics every layer is normalised, as in a trained model. The affine parameters
    (e.g. from :func:`randomize_batchnorm`) are kept; the model is left in eval mode. The inputs
    must give the coarsest maps many positions per channel (:data:`CALIBRATION_SIZE`): statistics
    of a few positions are noisy and blow up the layers after them.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch gives its exact statistics
        norm.train()
    try:
        model(*inputs)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return model


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
