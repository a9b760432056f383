"""Single-stage detectors with their post-processing inside the graph: image batch in, final
detections out (``export_onnx.py --end2end``).

One module per post-processing family, each a :class:`~.dense_heads.DenseHeadEnd2End` (mmdet's
``BaseDenseHead.predict_by_feat`` in traceable tensor ops): dense anchor heads
(:mod:`.anchor_heads`, RetinaNet) and dense point heads (:mod:`.point_heads`, RTMDet). They share
the final selection and the output convention (:mod:`.common`): ``dets`` (B, K, 5: x1, y1, x2, y2,
score) and ``labels`` (B, K, int64), K = ``test_cfg.max_per_img``, boxes in network-input pixels,
sorted by score; rows past an image's last detection are padding with score 0 and label -1.
"""
from typing import List, Type

import torch.nn as nn

from ...errors import ConfigError
from .anchor_heads import RetinaNetEnd2End
from .common import OUTPUT_CONVENTION, OUTPUT_NAMES
from .dense_heads import DenseHeadEnd2End
from .point_heads import RTMDetEnd2End

FAMILIES: List[Type[DenseHeadEnd2End]] = [RetinaNetEnd2End, RTMDetEnd2End]
SUPPORTED = ('; '.join(family.SUPPORTED for family in FAMILIES)
             + "; all with sigmoid scores and test_cfg.nms type 'nms'")


def check_supported(detector: nn.Module) -> Type[DenseHeadEnd2End]:
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


def End2EndDetector(detector: nn.Module) -> DenseHeadEnd2End:  # noqa: N802 (builds the module)
    """``forward(img) -> (dets, labels)`` for a supported ``detector``, in its family's module."""
    return check_supported(detector)(detector)


def set_check_biases(detector: nn.Module) -> nn.Module:
    """Set the head's output biases of a randomly initialised supported detector, in place, so that
    its detections are worth checking (:meth:`DenseHeadEnd2End.set_check_biases`)."""
    check_supported(detector).set_check_biases(detector.bbox_head)
    return detector


__all__ = ['End2EndDetector', 'FAMILIES', 'OUTPUT_CONVENTION', 'OUTPUT_NAMES', 'SUPPORTED',
           'check_supported', 'set_check_biases']
