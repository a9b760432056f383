"""Dense anchor heads end to end: RetinaNet (anchors from ``AnchorGenerator``, delta codes).

The post-processing is :class:`~.dense_heads.DenseHeadEnd2End`'s; this family says which
detectors it covers.
"""
import torch
import torch.nn as nn

from .dense_heads import DenseHeadEnd2End


class RetinaNetEnd2End(DenseHeadEnd2End):
    """A RetinaNet (``RetinaHead``, ``AnchorGenerator``, ``DeltaXYWHBBoxCoder``) end to end."""

    SUPPORTED = ('RetinaNet (RetinaHead, AnchorGenerator, DeltaXYWHBBoxCoder), e.g. '
                 'configs/retinanet_evit_m*_fpn_1x_coco.py or '
                 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py')

    DETECTOR, HEADS, PRIOR_GENERATOR, BBOX_CODER = (
        'RetinaNet', ('RetinaHead', ), 'AnchorGenerator', 'DeltaXYWHBBoxCoder')
    HEAD_SUBCLASSES = True  # e.g. FreeAnchorRetinaHead: RetinaHead's predict, another loss

    @staticmethod
    @torch.no_grad()
    def set_check_biases(detector: nn.Module) -> None:
        detector.bbox_head.retina_cls.bias.zero_()  # the anchors already overlap
