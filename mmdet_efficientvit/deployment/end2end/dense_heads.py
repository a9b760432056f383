"""A single-stage detector with mmdet's dense-head post-processing inside the graph.

:class:`DenseHeadEnd2End` follows mmdet 3.x ``BaseDenseHead.predict_by_feat`` /
``_predict_by_feat_single`` / ``_bbox_post_process`` step by step, with the head's ``test_cfg``,
in batched tensor ops that trace into one ONNX graph for any batch, height and width (sizes are
taken from the tensors, never frozen as Python numbers):

1. per level, the top ``nms_pre`` (prior, class) pairs by score (``filter_scores_and_topk``);
   selecting on the logits is the same as on the sigmoid scores, which is monotonic
   (``nms_pre <= 0`` keeps every pair);
2. the level's priors from the head's own ``prior_generator`` for the actual map size;
3. decoding with the head's own ``bbox_coder``, clipped to the network input when the coder clips;
4. ``score_thr``, ``min_bbox_size``, class-aware NMS and the ``max_per_img`` best
   (:class:`~.common.SelectDetections`).

Steps 1-3 (:func:`dense_candidates`) are also the RPN of the two-stage family.

What a family adds (``anchor_heads``, ``point_heads``) is which detectors it covers (mmdet's
registry names of the detector, heads, prior generator and box coder) and how to make random weights
worth checking: the priors and codes differ (anchors and deltas, points and distances), and the
head's own generator and coder handle them. The network input is the
normalised, padded batch that mmdet's data preprocessor produces. Boxes are clipped to it: that is
mmdet's ``img_shape`` when the test pipeline pads (RTMDet's ``Pad``), else larger, and
``onnx_inference.py`` clips each image's boxes to its ``img_shape`` before rescaling, as ``predict``
does.
"""
import itertools
from typing import Iterator, Optional, Tuple

import torch
import torch.nn as nn

from .common import (End2EndModule, Requirement, SelectDetections, at_most, clip_to_input,
                     first_mismatch)


class DenseHeadEnd2End(End2EndModule):
    """``forward(img) -> (dets, labels)`` for a detector that a subclass supports.

    Subclasses give ``SUPPORTED``, :meth:`set_check_biases` and what they cover as mmdet registry
    names: ``DETECTOR`` (or a subclass), ``HEADS`` (exactly these types unless
    ``HEAD_SUBCLASSES``), ``PRIOR_GENERATOR`` and ``BBOX_CODER`` (exactly these); every one also
    needs sigmoid scores and plain NMS (:func:`_shared`).
    """

    DETECTOR = ''
    HEADS: Tuple[str, ...] = ()
    HEAD_SUBCLASSES = False
    PRIOR_GENERATOR = ''
    BBOX_CODER = ''

    @classmethod
    def requirements(cls, detector: nn.Module) -> Iterator[Requirement]:
        from mmdet.registry import MODELS, TASK_UTILS
        head = getattr(detector, 'bbox_head', None)
        heads = tuple(MODELS.get(name) for name in cls.HEADS)
        yield ('detector', type(detector).__name__,
               isinstance(detector, MODELS.get(cls.DETECTOR)))
        yield ('bbox_head', type(head).__name__,
               isinstance(head, heads) if cls.HEAD_SUBCLASSES else type(head) in heads)
        yield ('prior_generator', type(head.prior_generator).__name__,
               type(head.prior_generator) is TASK_UTILS.get(cls.PRIOR_GENERATOR))
        yield ('bbox_coder', type(head.bbox_coder).__name__,
               type(head.bbox_coder) is TASK_UTILS.get(cls.BBOX_CODER))

    @classmethod
    def mismatch(cls, detector: nn.Module) -> Optional[str]:
        return first_mismatch(itertools.chain(cls.requirements(detector), _shared(detector)))

    def __init__(self, detector: nn.Module):
        super().__init__(detector)
        head = detector.bbox_head
        self.test_cfg = head.test_cfg.to_dict()
        self.num_classes = head.num_classes
        self.nms_pre = int(head.test_cfg.get('nms_pre', -1))
        self.select = SelectDetections(head.test_cfg)

    def network(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        cls_scores, bbox_preds = self.detector.bbox_head(self.detector.extract_feat(img))
        return tuple(cls_scores) + tuple(bbox_preds)

    def candidates(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1-3: (B, N) scores, (B, N) labels and (B, N, 4) clipped boxes of the candidates."""
        scores, labels, boxes, _ = dense_candidates(
            self.detector.bbox_head, self.detector.extract_feat(img), img, self.nms_pre)
        return scores, labels, boxes

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.select(*self.candidates(img))


def dense_candidates(head: nn.Module, feats: Tuple[torch.Tensor, ...], img: torch.Tensor,
                     nms_pre: int) -> Tuple[torch.Tensor, ...]:
    """Steps 1-3 for a dense ``head`` with sigmoid scores on the neck's ``feats`` of ``img``:
    (B, N) scores, (B, N) int64 labels, (B, N, 4) boxes clipped to ``img`` when the coder clips,
    and (B, N) int64 level ids (mmdet's RPN runs its NMS per level)."""
    from mmdet.structures.bbox import get_box_tensor
    cls_scores, bbox_preds = head(feats)
    batch, num_classes, code = img.shape[0], head.cls_out_channels, head.bbox_coder.encode_size
    priors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores],
                                              dtype=img.dtype, device=img.device)
    scores, labels, levels, level_priors, codes = [], [], [], [], []
    for level, (cls_score, bbox_pred, prior) in enumerate(zip(cls_scores, bbox_preds, priors)):
        logits = cls_score.permute(0, 2, 3, 1).reshape(batch, -1)
        k = logits.shape[1] if nms_pre <= 0 else at_most(logits.shape[1], nms_pre)
        top, index = logits.topk(k, dim=1)
        prior_index = torch.div(index, num_classes, rounding_mode='floor')
        scores.append(top.sigmoid())
        labels.append(index % num_classes)
        levels.append(torch.full_like(index, level))
        level_priors.append(prior[prior_index])
        pred = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, code)
        codes.append(pred.gather(1, prior_index.unsqueeze(-1).expand(-1, -1, code)))
    level_priors, codes = torch.cat(level_priors, 1), torch.cat(codes, 1)
    boxes = get_box_tensor(head.bbox_coder.decode(level_priors.flatten(0, 1),
                                                  codes.flatten(0, 1)))
    boxes = boxes.reshape(batch, -1, 4)
    if head.bbox_coder.clip_border:
        boxes = clip_to_input(boxes, img)
    return torch.cat(scores, 1), torch.cat(labels, 1), boxes, torch.cat(levels, 1)


def _shared(detector: nn.Module) -> Iterator[Requirement]:
    """What every dense family needs of the head: sigmoid scores and plain NMS."""
    head = detector.bbox_head
    nms_type = (head.test_cfg.get('nms') or {}).get('type', 'nms')
    yield 'scores', 'softmax', head.use_sigmoid_cls
    yield 'test_cfg.nms type', nms_type, nms_type == 'nms'
