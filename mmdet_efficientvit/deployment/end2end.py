"""A RetinaNet with its post-processing inside the graph: image batch in, final detections out.

:class:`End2EndDetector` follows mmdet 3.x ``RetinaHead.predict`` step by step, with the config's
``test_cfg``, but in batched tensor ops that trace into one ONNX graph for any batch, height and
width (sizes are taken from the tensors, never frozen as Python numbers):

1. per level, the top ``nms_pre`` (anchor, class) pairs by score (``filter_scores_and_topk``);
   selecting on the logits is the same as on the sigmoid scores, which is monotonic
   (``nms_pre <= 0`` keeps every pair);
2. the level's anchors from the head's own ``prior_generator`` for the actual map size;
3. delta decoding with the head's own ``bbox_coder``, clipped to the network input;
4. ``score_thr`` and ``min_bbox_size``;
5. class-aware NMS (ONNX ``NonMaxSuppression``; boxes offset per class as ``batched_nms`` does);
6. the ``max_per_img`` best.

Outputs follow mmdeploy's convention: ``dets`` (B, K, 5: x1, y1, x2, y2, score) and ``labels``
(B, K, int64), K = ``test_cfg.max_per_img``, boxes in network-input pixels, sorted by score; rows
past an image's last detection are padding with score 0 and label -1 (:data:`OUTPUT_CONVENTION`).

One difference from ``predict``: boxes are clipped to the (padded) network input, since the graph
does not know where the image ends; mapping them back to the original image clips them again.
"""
from typing import Tuple, Union

import torch
import torch.nn as nn
from torch.onnx.operators import shape_as_tensor

from ..errors import ConfigError

OUTPUT_NAMES = ('dets', 'labels')
OUTPUT_CONVENTION = ('dets (batch, K, 5): x1, y1, x2, y2, score in network-input pixels, sorted by '
                     'score; labels (batch, K) int64; K = test_cfg.max_per_img; rows past the last '
                     'detection of an image are padding: score 0, label -1')
SUPPORTED = ("RetinaNet (RetinaHead with sigmoid scores, AnchorGenerator, DeltaXYWHBBoxCoder, "
             "test_cfg.nms type 'nms'), e.g. configs/retinanet_evit_m*_fpn_1x_coco.py or "
             "mmdet::retinanet/retinanet_r50_fpn_1x_coco.py")


def check_supported(detector: nn.Module) -> None:
    """Raise :class:`ConfigError` naming what is supported unless ``detector`` is such a RetinaNet."""
    from mmdet.models.dense_heads import RetinaHead
    from mmdet.models.detectors import RetinaNet
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
    from mmdet.models.task_modules.prior_generators import AnchorGenerator

    head = getattr(detector, 'bbox_head', None)
    checks = [
        ('detector', type(detector).__name__, isinstance(detector, RetinaNet)),
        ('bbox_head', type(head).__name__, isinstance(head, RetinaHead)),
    ]
    if isinstance(head, RetinaHead):
        nms_type = (head.test_cfg.get('nms') or {}).get('type', 'nms')
        checks += [
            ('scores', 'softmax', head.use_sigmoid_cls),
            ('prior_generator', type(head.prior_generator).__name__,
             type(head.prior_generator) is AnchorGenerator),
            ('bbox_coder', type(head.bbox_coder).__name__,
             type(head.bbox_coder) is DeltaXYWHBBoxCoder),
            ('test_cfg.nms type', nms_type, nms_type == 'nms'),
        ]
    for what, got, ok in checks:
        if not ok:
            raise ConfigError(f'--end2end export supports {SUPPORTED}; this model has {what} {got}')


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


class End2EndDetector(nn.Module):
    """``forward(img) -> (dets, labels)`` for a supported RetinaNet (see the module docstring).

    ``img`` is the normalised, padded batch that mmdet's data preprocessor produces.
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        check_supported(detector)
        self.detector = detector
        head = detector.bbox_head
        cfg = head.test_cfg
        self.nms_pre = int(cfg.get('nms_pre', -1))
        self.score_thr = float(cfg.get('score_thr', 0.))
        self.min_bbox_size = float(cfg.get('min_bbox_size', -1))
        self.iou_threshold = float(cfg.nms.iou_threshold)
        self.class_agnostic = bool(cfg.nms.get('class_agnostic', False))
        self.max_per_img = int(cfg.max_per_img)

    def candidates(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Steps 1-3: (B, N) scores, (B, N) labels and (B, N, 4) clipped boxes of the candidates."""
        head = self.detector.bbox_head
        cls_scores, bbox_preds = head(self.detector.extract_feat(img))
        batch, num_classes = img.shape[0], head.cls_out_channels
        priors = head.prior_generator.grid_priors([c.shape[-2:] for c in cls_scores],
                                                  dtype=img.dtype, device=img.device)
        scores, labels, anchors, deltas = [], [], [], []
        for cls_score, bbox_pred, level_priors in zip(cls_scores, bbox_preds, priors):
            logits = cls_score.permute(0, 2, 3, 1).reshape(batch, -1)
            k = logits.shape[1] if self.nms_pre <= 0 else at_most(logits.shape[1], self.nms_pre)
            top, index = logits.topk(k, dim=1)
            anchor_index = torch.div(index, num_classes, rounding_mode='floor')
            scores.append(top.sigmoid())
            labels.append(index % num_classes)
            anchors.append(level_priors[anchor_index])
            level_deltas = bbox_pred.permute(0, 2, 3, 1).reshape(batch, -1, 4)
            deltas.append(level_deltas.gather(1, anchor_index.unsqueeze(-1).expand(-1, -1, 4)))
        anchors, deltas = torch.cat(anchors, 1), torch.cat(deltas, 1)
        boxes = head.bbox_coder.decode(anchors.reshape(-1, 4), deltas.reshape(-1, 4))
        boxes = boxes.reshape(anchors.shape)
        if head.bbox_coder.clip_border:
            hw = shape_as_tensor(img)[2:].to(boxes.dtype)
            boxes = torch.minimum(boxes.clamp(min=0), hw.flip(0).repeat(2))
        return torch.cat(scores, 1), torch.cat(labels, 1), boxes

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        scores, labels, boxes = self.candidates(img)
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
