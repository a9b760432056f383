"""Detectors with their post-processing inside the graph: image batch in, final detections out
(``export_onnx.py --end2end``).

One module per post-processing family, each an :class:`~.common.End2EndModule`: dense anchor heads
(:mod:`.anchor_heads`, RetinaNet) and dense point heads (:mod:`.point_heads`, RTMDet), both a
:class:`~.dense_heads.DenseHeadEnd2End` (mmdet's ``BaseDenseHead.predict_by_feat`` in traceable
tensor ops), and two-stage detectors with masks (:mod:`.two_stage`, Mask R-CNN). They share the
NMS, the final selection and the output convention (:mod:`.common`): ``dets`` (B, K, 5: x1, y1, x2,
y2, score) and ``labels`` (B, K, int64), K = ``max_per_img``, boxes in network-input pixels, sorted
by score; rows past an image's last detection are padding with score 0 and label -1; Mask R-CNN
adds ``masks`` (B, K, 28, 28), each detection's mask probabilities over its box.
"""
from typing import List, Type

import torch
import torch.nn as nn

from ...errors import ConfigError
from ..check_weights import CALIBRATION_SIZE, calibrate_batchnorm, randomize_batchnorm
from .anchor_heads import RetinaNetEnd2End
from .common import (MASK_OUTPUT_CONVENTION, MASK_OUTPUT_NAMES, OUTPUT_CONVENTION, OUTPUT_NAMES,
                     End2EndModule, Network)
from .point_heads import RTMDetEnd2End
from .two_stage import MaskRCNNEnd2End

FAMILIES: List[Type[End2EndModule]] = [RetinaNetEnd2End, RTMDetEnd2End, MaskRCNNEnd2End]
SUPPORTED = ('; '.join(family.SUPPORTED for family in FAMILIES)
             + "; all with sigmoid scores (Mask R-CNN: its RPN's) and NMS type 'nms'")


def check_supported(detector: nn.Module) -> Type[End2EndModule]:
    """The family that exports ``detector``; else :class:`ConfigError` (one line) naming every
    supported detector and what this one has that none supports."""
    reasons = []
    for family in FAMILIES:
        reason = family.mismatch(detector)
        if reason is None:
            return family
        reasons.append(reason)
    # a family that knows the detector type says more than the others' "detector X"
    reason = next((r for r in reasons if not r.startswith('detector ')), reasons[0])
    raise ConfigError(f'--end2end export supports {SUPPORTED}; this model has {reason}')


def wrap_end2end(detector: nn.Module) -> End2EndModule:
    """``detector`` wrapped in the end-to-end module of its family (:func:`check_supported`):
    ``forward(img) -> OUTPUT_NAMES``, its post-processing inside the graph."""
    return check_supported(detector)(detector)


def set_check_biases(detector: nn.Module) -> nn.Module:
    """Set the head's output biases of a randomly initialised supported detector, in place, so that
    its detections are worth checking (:meth:`End2EndModule.set_check_biases`)."""
    check_supported(detector).set_check_biases(detector)
    return detector


def randomize_for_check(detector: nn.Module, seed: int = 0) -> nn.Module:
    """Make a randomly initialised supported detector worth checking an export of, in place:
    BatchNorm randomised (:func:`randomize_batchnorm`), then calibrated on a random
    :data:`CALIBRATION_SIZE` image through the network that is exported, then the head biases of
    :func:`set_check_biases`. ``export_onnx.py --end2end`` without ``--checkpoint`` checks with these."""
    randomize_batchnorm(detector, seed)
    calibrate_batchnorm(Network(wrap_end2end(detector)), torch.randn(1, 3, *CALIBRATION_SIZE))
    return set_check_biases(detector)


__all__ = ['End2EndModule', 'FAMILIES', 'MASK_OUTPUT_CONVENTION', 'MASK_OUTPUT_NAMES', 'Network',
           'OUTPUT_CONVENTION', 'OUTPUT_NAMES', 'SUPPORTED', 'check_supported', 'randomize_for_check',
           'set_check_biases', 'wrap_end2end']
