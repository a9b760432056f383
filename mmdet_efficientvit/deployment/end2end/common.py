"""What every end-to-end detector shares: the family protocol, the output conventions, box
clipping and the final selection.

:class:`End2EndModule` is what a post-processing family (:mod:`.anchor_heads`, :mod:`.point_heads`,
:mod:`.two_stage`) implements: which detectors it exports, how to make random weights worth
checking, and ``forward(img)`` in its output convention. :class:`SelectDetections` is mmdet 3.x
``BaseDenseHead._bbox_post_process`` (``min_bbox_size``, class-aware ``batched_nms``,
``max_per_img``) plus ``score_thr``, for a batch of candidates, in tensor ops that trace into ONNX
for any batch and candidate count; single-stage heads, the RPN and the R-CNN box head all end
with it. Its outputs follow mmdeploy's convention (:data:`OUTPUT_CONVENTION`); detectors with
masks add ``masks`` (:data:`MASK_OUTPUT_CONVENTION`).
"""
from typing import Iterable, Iterator, Optional, Tuple, Union

import torch
import torch.nn as nn
from torch.onnx.operators import shape_as_tensor

from ...errors import ConfigError

OUTPUT_NAMES = ('dets', 'labels')
_DETECTIONS = ('dets (batch, K, 5): x1, y1, x2, y2, score in network-input pixels, sorted by '
               'score; labels (batch, K) int64; K = {max_per_img}; rows past the last detection of '
               'an image are padding: score 0, label -1')
OUTPUT_CONVENTION = _DETECTIONS.format(max_per_img='test_cfg.max_per_img')
MASK_OUTPUT_NAMES = OUTPUT_NAMES + ('masks', )
MASK_OUTPUT_CONVENTION = (
    _DETECTIONS.format(max_per_img='test_cfg.rcnn.max_per_img')
    + "; masks (batch, K, M, M) float32: the mask head's sigmoid probabilities of each "
    "detection's own label over its box in dets (M = the mask head's output size, 28 for Mask "
    "R-CNN), to be pasted into the image as mmdet's _do_paste_mask does (bilinear) and "
    'thresholded at test_cfg.rcnn.mask_thr_binary; padding rows are all 0')

Requirement = Tuple[str, str, bool]  # (what, what this model has, whether that is supported)


def first_mismatch(requirements: Iterable[Requirement]) -> Optional[str]:
    """``'<what> <what this model has>'`` of the first unmet requirement, None if all are met
    (later requirements may assume the earlier ones are met: they are evaluated lazily)."""
    for what, got, ok in requirements:
        if not ok:
            return f'{what} {got}'
    return None


class End2EndModule(nn.Module):
    """``forward(img) -> OUTPUT_NAMES`` for a detector that a family (subclass) supports.

    A family gives ``SUPPORTED`` (one phrase naming the detectors), :meth:`requirements`,
    :meth:`set_check_biases` and :meth:`network`, its output names and convention if not
    :data:`OUTPUT_NAMES`, and the least ONNX opset its ops need; its ``__init__`` sets
    ``test_cfg`` (the dict recorded in the file's metadata) and ``num_classes``.
    """

    SUPPORTED = ''
    OUTPUT_NAMES = OUTPUT_NAMES
    OUTPUT_CONVENTION = OUTPUT_CONVENTION
    MIN_OPSET = 11  # NonMaxSuppression with dynamic inputs

    @classmethod
    def requirements(cls, detector: nn.Module) -> Iterator[Requirement]:
        """The family's checks, in order; later ones may assume the earlier ones passed."""
        raise NotImplementedError

    @classmethod
    def mismatch(cls, detector: nn.Module) -> Optional[str]:
        """None if this family exports ``detector``, else what it has that is not supported."""
        return first_mismatch(cls.requirements(detector))

    @staticmethod
    def set_check_biases(detector: nn.Module) -> None:
        """Set the output biases of a randomly initialised ``detector`` so that its detections
        are worth checking: scores that pass ``score_thr`` (mmdet's initialisers put them far
        below) and boxes that overlap their neighbours, so NMS has work."""
        raise NotImplementedError

    def __init__(self, detector: nn.Module):
        super().__init__()
        reason = self.mismatch(detector)
        if reason is not None:
            raise ConfigError(f'{type(self).__name__} exports {self.SUPPORTED}; this model has '
                              f'{reason}')
        self.detector = detector

    def network(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """The network's own outputs before any selection (what BN folding may change)."""
        raise NotImplementedError


class Network(nn.Module):
    """``forward(img)`` = the end-to-end module's :meth:`End2EndModule.network`, as a module of its
    own: BatchNorm calibration and the BN-folding check run the network without the selection
    (a two-stage detector's RoI heads would run on a thousand proposals)."""

    def __init__(self, end2end: End2EndModule):
        super().__init__()
        self.end2end = end2end

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.end2end.network(img)


def clip_to_input(boxes: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """x1y1x2y2 ``boxes`` clipped to the (B, C, H, W) network input, as mmdet's box coders clip to
    ``max_shape``, with the size taken from the tensor (a graph value when traced)."""
    hw = shape_as_tensor(img)[2:].to(boxes.dtype)
    return torch.minimum(boxes.clamp(min=0), hw.flip(0).repeat(2))


class NonMaxSuppression(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` for one class over a batch; in eager mode mmcv's ``nms``.

    ``boxes`` (B, N, 4) x1y1x2y2, ``scores`` (B, 1, N) -> (M, 3) int64 rows (image, 0, box index)
    of the kept boxes, at most ``max_output`` per image, each image's in descending score order;
    boxes scoring ``<= score_threshold`` are dropped first.
    """

    @staticmethod
    def forward(ctx, boxes: torch.Tensor, scores: torch.Tensor, max_output: int,
                iou_threshold: float, score_threshold: float) -> torch.Tensor:
        from mmcv.ops import nms
        rows = []
        for b in range(boxes.shape[0]):
            candidates = torch.nonzero(scores[b, 0] > score_threshold).squeeze(1)
            keep = candidates[:0]
            if candidates.numel():
                _, order = nms(boxes[b, candidates], scores[b, 0, candidates], iou_threshold)
                keep = candidates[order[:max_output]]
            rows.append(torch.stack([torch.full_like(keep, b), torch.zeros_like(keep), keep], 1))
        return torch.cat(rows)

    @staticmethod
    def symbolic(g, boxes, scores, max_output: int, iou_threshold: float, score_threshold: float):
        def const(value, dtype):
            return g.op('Constant', value_t=torch.tensor([value], dtype=dtype))

        return g.op('NonMaxSuppression', boxes, scores, const(max_output, torch.int64),
                    const(iou_threshold, torch.float32), const(score_threshold, torch.float32),
                    center_point_box_i=0)


def at_most(size: Union[int, torch.Tensor], k: int) -> Union[int, torch.Tensor]:
    """``min(size, k)`` that stays a graph value when ``size`` is a traced size (a tensor)."""
    return torch.clamp(size, max=k) if torch.is_tensor(size) else min(size, k)


class SelectDetections(nn.Module):
    """``forward(scores, labels, boxes) -> (dets, labels)`` with a head's ``test_cfg``.

    Candidates: (B, N) scores, (B, N) int64 labels, (B, N, 4) boxes. Kept are those scoring above
    ``score_thr`` whose sides exceed ``min_bbox_size`` (when >= 0) and that survive class-aware NMS
    (ONNX ``NonMaxSuppression`` on boxes shifted per class as ``batched_nms`` shifts them, so the
    IoUs are computed on the same numbers); the ``max_per_img`` best of them, then padding.
    """

    def __init__(self, test_cfg: dict):
        super().__init__()
        self.score_thr = float(test_cfg.get('score_thr', 0.))
        self.min_bbox_size = float(test_cfg.get('min_bbox_size', -1))
        self.iou_threshold = float(test_cfg['nms']['iou_threshold'])
        self.class_agnostic = bool(test_cfg['nms'].get('class_agnostic', False))
        self.max_per_img = int(test_cfg['max_per_img'])

    def forward(self, scores: torch.Tensor, labels: torch.Tensor,
                boxes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        valid = scores > self.score_thr
        if self.min_bbox_size >= 0:
            wh = boxes[..., 2:] - boxes[..., :2]
            valid = valid & (wh > self.min_bbox_size).all(-1)
        if self.class_agnostic:
            nms_boxes = boxes
        else:  # batched_nms: shift each class by (largest coordinate + 1) x label
            largest = torch.where(valid.unsqueeze(-1), boxes, boxes.new_zeros(())).amax((1, 2))
            nms_boxes = boxes + (labels.to(boxes.dtype) * (largest[:, None] + 1)).unsqueeze(-1)
        dropped = self.score_thr - 1  # below the NMS score threshold
        nms_scores = torch.where(valid, scores, scores.new_full((), dropped))
        selected = NonMaxSuppression.apply(nms_boxes, nms_scores.unsqueeze(1), self.max_per_img,
                                           self.iou_threshold, self.score_thr)
        batch, num = scores.shape
        flat = selected[:, 0] * num + selected[:, 2]
        ones = torch.ones_like(flat, dtype=scores.dtype)
        kept = torch.zeros_like(scores).reshape(-1).scatter(0, flat, ones).reshape(batch, num) > 0
        # the best K kept candidates; K padding rows make sure there are K to choose from
        pad = self.max_per_img
        final = torch.cat([torch.where(kept, scores, scores.new_full((), -1.)),
                           scores.new_full((1, 1), -1.).expand(batch, pad)], 1)
        top, index = final.topk(self.max_per_img, dim=1)
        boxes = torch.cat([boxes, boxes.new_zeros((1, 1, 4)).expand(batch, pad, 4)], 1)
        labels = torch.cat([labels, labels.new_full((1, 1), -1).expand(batch, pad)], 1)
        found = top > -1
        dets = torch.cat([boxes.gather(1, index.unsqueeze(-1).expand(-1, -1, 4)),
                          top.unsqueeze(-1)], -1)
        dets = torch.where(found.unsqueeze(-1), dets, dets.new_zeros(()))
        labels = torch.where(found, labels.gather(1, index), labels.new_full((), -1))
        return dets, labels
