"""Dense point heads end to end: RTMDet (points from ``MlvlPointGenerator``, distance codes).

The post-processing is :class:`~.dense_heads.DenseHeadEnd2End`'s; this family says which
detectors it covers. RTMDet's head already multiplies the distances by the level's stride (and
applies ``exp`` when ``exp_on_reg``), so its ``bbox_preds`` decode as they are. The objectness
branch (``with_objectness``) is refused: mmdet fuses it with an autograd function
(``sigmoid_geometric_mean``) that has no ONNX form.
"""
import math
from typing import Iterator, List

import torch
import torch.nn as nn

from .common import Requirement
from .dense_heads import DenseHeadEnd2End

CHECK_DISTANCE = 4.  # strides from the point to each side of a random-weight box


class RTMDetEnd2End(DenseHeadEnd2End):
    """An RTMDet (``RTMDetHead`` / ``RTMDetSepBNHead``, ``MlvlPointGenerator``,
    ``DistancePointBBoxCoder``, no objectness) end to end."""

    SUPPORTED = ('RTMDet (RTMDetHead or RTMDetSepBNHead without objectness, MlvlPointGenerator, '
                 'DistancePointBBoxCoder), e.g. configs/rtmdet_evit_m*_8xb32-300e_coco.py or '
                 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py')

    # exact head types (HEAD_SUBCLASSES False): RTMDet-Ins heads subclass these and predict masks
    DETECTOR, HEADS, PRIOR_GENERATOR, BBOX_CODER = (
        'RTMDet', ('RTMDetHead', 'RTMDetSepBNHead'), 'MlvlPointGenerator', 'DistancePointBBoxCoder')

    @classmethod
    def requirements(cls, detector: nn.Module) -> Iterator[Requirement]:
        yield from super().requirements(detector)
        yield 'bbox_head', 'with_objectness=True', not detector.bbox_head.with_objectness

    @staticmethod
    @torch.no_grad()
    def set_check_biases(detector: nn.Module) -> None:
        head = detector.bbox_head
        # mmdet's std-0.01 regression init gives sub-pixel boxes; CHECK_DISTANCE strides to every
        # side instead: 8-stride squares, whose IoU with a row neighbour is 7/9 (suppressed at
        # RTMDet's 0.65) and with a diagonal one 0.62 (kept)
        exp = getattr(head, 'exp_on_reg', True)  # RTMDetHead always takes exp
        distance = math.log(CHECK_DISTANCE) if exp else CHECK_DISTANCE
        # RTMDetSepBNHead: one conv per level; RTMDetHead: one for all levels
        for conv in _per_level(head.rtm_cls):
            conv.bias.zero_()
        for conv in _per_level(head.rtm_reg):
            conv.bias.fill_(distance)


def _per_level(convs: nn.Module) -> List[nn.Module]:
    return list(convs) if isinstance(convs, nn.ModuleList) else [convs]
