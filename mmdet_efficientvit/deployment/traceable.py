"""Models as tracing takes them: ``forward(img)`` returns a flat tuple of tensors.

ONNX export, FLOP counting and timing trace a module whose one input is the image batch; mmdet's
detectors take data samples and return nested structures, and timm's backbones return what their
classifier needs. These wrappers give each the traceable signature.
"""
from typing import Tuple

import torch
import torch.nn as nn


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


class BackboneFeatureMaps(nn.Module):
    """A backbone whose ``forward(img)`` is the tuple of its feature maps: ours as it is, timm's
    EfficientViT through ``forward_intermediates`` (its three stage maps)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if hasattr(self.model, 'forward_intermediates'):  # timm
            return tuple(self.model.forward_intermediates(img, intermediates_only=True))
        return tuple(self.model(img))
