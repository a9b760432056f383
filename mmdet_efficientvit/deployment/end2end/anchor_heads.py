"""Dense anchor heads end to end: RetinaNet (anchors from ``AnchorGenerator``, delta codes).

The post-processing is :class:`~.dense_heads.DenseHeadEnd2End`'s; this family says which
detectors it covers.
"""
from typing import Iterator

import torch
import torch.nn as nn

from .common import Requirement
from .dense_heads import DenseHeadEnd2End


class RetinaNetEnd2End(DenseHeadEnd2End):
    """A RetinaNet (``RetinaHead``, ``AnchorGenerator``, ``DeltaXYWHBBoxCoder``) end to end."""

    SUPPORTED = ('RetinaNet (RetinaHead, AnchorGenerator, DeltaXYWHBBoxCoder), e.g. '
                 'configs/retinanet_evit_m*_fpn_1x_coco.py or '
                 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')

    @classmethod
    def requirements(cls, detector: nn.Module) -> Iterator[Requirement]:
        from mmdet.models.dense_heads import RetinaHead
        from mmdet.models.detectors import RetinaNet
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
        from mmdet.models.task_modules.prior_generators import AnchorGenerator
        head = getattr(detector, 'bbox_head', None)
        yield 'detector', type(detector).__name__, isinstance(detector, RetinaNet)
        yield 'bbox_head', type(head).__name__, isinstance(head, RetinaHead)
        yield ('prior_generator', type(head.prior_generator).__name__,
               type(head.prior_generator) is AnchorGenerator)
        yield ('bbox_coder', type(head.bbox_coder).__name__,
               type(head.bbox_coder) is DeltaXYWHBBoxCoder)

    @staticmethod
    @torch.no_grad()
    def set_check_biases(detector: nn.Module) -> None:
        detector.bbox_head.retina_cls.bias.zero_()  # the anchors already overlap
