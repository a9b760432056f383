"""What every end-to-end detector shares: the output convention and the final selection.

:class:`SelectDetections` is mmdet 3.x ``BaseDenseHead._bbox_post_process`` (``min_bbox_size``,
class-aware ``batched_nms``, ``max_per_img``) plus ``score_thr``, for a batch of candidates, in
tensor ops that trace into ONNX for any batch and candidate count. Its outputs follow mmdeploy's
convention (:data:`OUTPUT_CONVENTION`).
"""
from typing import Tuple, Union

import torch
import torch.nn as nn

OUTPUT_NAMES = ('dets', 'labels')
OUTPUT_CONVENTION = ('dets (batch, K, 5): x1, y1, x2, y2, score in network-input pixels, sorted by '
                     'score; labels (batch, K) int64; K = test_cfg.max_per_img; rows past the last '
                     'detection of an image are padding: score 0, label -1')


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
