"""Two-stage detectors with masks end to end: Mask R-CNN (RPN, RoIAlign, box head, mask head).

:class:`MaskRCNNEnd2End` follows mmdet 3.x ``TwoStageDetector.predict`` step by step, with the
detector's ``test_cfg`` (``rpn`` and ``rcnn``), in batched tensor ops that trace into one ONNX graph
for any batch, height and width:

1. proposals (``RPNHead._predict_by_feat_single`` / ``_bbox_post_process``): per level the top
   ``nms_pre`` anchors, decoded and clipped to the input (the dense heads' steps,
   :func:`~.dense_heads.dense_candidates`), ``min_bbox_size``, NMS within each level (mmdet's
   ``batched_nms`` over the level ids) and the ``max_per_img`` best
   (:class:`~.common.SelectDetections`);
2. RoI features (``SingleRoIExtractor``): each RoI's level from mmdet's own ``map_roi_levels``
   (``finest_scale``), then ONNX ``RoiAlign`` (:class:`RoIAlign`) per level;
3. the box head (``BBoxHead._predict_by_feat_single``, ``multiclass_nms``): softmax scores,
   class-specific deltas decoded from the proposals and clipped, ``score_thr``, NMS per class and
   the ``max_per_img`` best (:class:`~.common.SelectDetections` again);
4. the mask head on the final boxes (``FCNMaskHead.predict_by_feat`` before pasting): the sigmoid
   of each detection's own label's mask.

Fewer than ``rpn.max_per_img`` proposals leave padding rows, which get score 0 in the box head (so
no detection comes from them); padding detections get all-zero masks. The outputs follow
:data:`~.common.MASK_OUTPUT_CONVENTION`: per-box masks that the runtime pastes, mmdeploy's
convention without ``export_postprocess_mask``. Boxes are clipped to the network input, that is the
padded batch (mmdet clips to each image's ``img_shape``): the two agree wherever the test pipeline's
resized image fills the input (a size that is a multiple of ``pad_size_divisor``, or a ``Pad``).
"""
from typing import Iterator, Tuple

import torch
import torch.nn as nn

from .common import (MASK_OUTPUT_CONVENTION, MASK_OUTPUT_NAMES, End2EndModule, Requirement,
                     SelectDetections, clip_to_input)
from .dense_heads import dense_candidates

# Random weights: the box classifier's bias (before softmax over the classes and background) that
# the check sets, see MaskRCNNEnd2End.set_check_biases
CHECK_CLASSES = 4  # classes given a head start
CHECK_CLASS_BIAS = 4.
CHECK_BACKGROUND_BIAS = -4.


class RoIAlign(torch.autograd.Function):
    """ONNX ``RoiAlign`` (opset >= 16) of mmcv's ``RoIAlign(aligned=True, pool_mode='avg')``; in
    eager mode mmcv's ``roi_align`` itself.

    ``feats`` (B, C, H, W), ``boxes`` (N, 4) x1y1x2y2 in input pixels, ``batch_indices`` (N,)
    int64 -> (N, C, h, w). mmcv's ``aligned=True`` (RoI shifted by half a pixel, no minimum size)
    is ONNX's ``coordinate_transformation_mode='half_pixel'``, and ``sampling_ratio=0`` (ceil(RoI
    size / bin count) samples per bin) means the same in both. mmcv's own symbolic writes the
    opset-10 form (boxes shifted by half a pixel in the then default ``output_half_pixel`` mode,
    whose minimum RoI size of one pixel ``aligned=True`` does not have), which from opset 16, where
    ``half_pixel`` is the default, shifts twice.
    """

    @staticmethod
    def forward(ctx, feats: torch.Tensor, boxes: torch.Tensor, batch_indices: torch.Tensor,
                output_size: Tuple[int, int], spatial_scale: float,
                sampling_ratio: int) -> torch.Tensor:
        from mmcv.ops import roi_align
        rois = torch.cat([batch_indices.to(boxes.dtype).unsqueeze(1), boxes], 1)
        # mmcv's kernels read the maps as contiguous NCHW whatever their strides
        return roi_align(feats.contiguous(), rois, output_size, spatial_scale, sampling_ratio,
                         'avg', True)

    @staticmethod
    def symbolic(g, feats, boxes, batch_indices, output_size: Tuple[int, int],
                 spatial_scale: float, sampling_ratio: int):
        return g.op('RoiAlign', feats, boxes, batch_indices, mode_s='avg',
                    coordinate_transformation_mode_s='half_pixel', output_height_i=output_size[0],
                    output_width_i=output_size[1], spatial_scale_f=spatial_scale,
                    sampling_ratio_i=sampling_ratio)


def extract_rois(extractor: nn.Module, feats: Tuple[torch.Tensor, ...], boxes: torch.Tensor,
                 batch_indices: torch.Tensor) -> torch.Tensor:
    """mmdet's ``SingleRoIExtractor.forward`` for (N, 4) ``boxes`` of the images
    ``batch_indices``: (N, C, h, w) features, each RoI pooled from its own level.

    Each level pools every RoI, those of other levels shrunk to empty boxes (with adaptive
    sampling an empty RoI costs no samples) and masked out: static shapes, no ``NonZero``.
    """
    feats = feats[:extractor.num_inputs]
    rois = torch.cat([batch_indices.to(boxes.dtype).unsqueeze(1), boxes], 1)
    levels = extractor.map_roi_levels(rois, len(feats))
    pooled = None
    for level, (feat, layer) in enumerate(zip(feats, extractor.roi_layers)):
        here = levels == level
        level_boxes = torch.where(here.unsqueeze(1), boxes, boxes.new_zeros(()))
        part = RoIAlign.apply(feat, level_boxes, batch_indices, tuple(layer.output_size),
                              float(layer.spatial_scale), int(layer.sampling_ratio))
        part = torch.where(here.reshape(-1, 1, 1, 1), part, part.new_zeros(()))
        pooled = part if pooled is None else pooled + part
    return pooled


def _image_indices(rows: torch.Tensor) -> torch.Tensor:
    """The image index of every row of a (B, N, ...) tensor, flattened to (B * N,) int64."""
    batch, num = rows.shape[:2]
    return torch.arange(batch, device=rows.device).unsqueeze(1).expand(batch, num).reshape(-1)


class MaskRCNNEnd2End(End2EndModule):
    """``forward(img) -> (dets, labels, masks)`` for a Mask R-CNN (``RPNHead``,
    ``StandardRoIHead``, ``SingleRoIExtractor`` with ``RoIAlign``, ``BBoxHead`` / ``ConvFCBBoxHead``
    with ``DeltaXYWHBBoxCoder``, ``FCNMaskHead``)."""

    SUPPORTED = ('Mask R-CNN (RPNHead, StandardRoIHead with RoIAlign, a (ConvFC)BBoxHead with '
                 'DeltaXYWHBBoxCoder and FCNMaskHead), e.g. '
                 'configs/mask_rcnn_evit_m*_fpn_1x_coco.py or '
                 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    OUTPUT_NAMES = MASK_OUTPUT_NAMES
    OUTPUT_CONVENTION = MASK_OUTPUT_CONVENTION
    MIN_OPSET = 16  # RoiAlign's coordinate_transformation_mode

    @classmethod
    def requirements(cls, detector: nn.Module) -> Iterator[Requirement]:
        from mmcv.ops import RoIAlign as MMCVRoIAlign

        from mmdet.models.dense_heads import RPNHead
        from mmdet.models.detectors import MaskRCNN
        from mmdet.models.roi_heads import (BBoxHead, ConvFCBBoxHead, FCNMaskHead,
                                            Shared2FCBBoxHead, Shared4Conv1FCBBoxHead,
                                            SingleRoIExtractor, StandardRoIHead)
        from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
        from mmdet.models.task_modules.prior_generators import AnchorGenerator
        yield 'detector', type(detector).__name__, isinstance(detector, MaskRCNN)
        rpn, roi = detector.rpn_head, detector.roi_head
        # exact types: subclasses change the post-processing (GA-RPN, cascades, mask scoring)
        yield 'rpn_head', type(rpn).__name__, type(rpn) is RPNHead
        yield 'rpn_head scores', 'softmax', rpn.use_sigmoid_cls
        yield ('rpn_head prior_generator', type(rpn.prior_generator).__name__,
               type(rpn.prior_generator) is AnchorGenerator)
        yield ('rpn_head bbox_coder', type(rpn.bbox_coder).__name__,
               type(rpn.bbox_coder) is DeltaXYWHBBoxCoder)
        yield 'roi_head', type(roi).__name__, type(roi) is StandardRoIHead
        yield 'roi_head', 'a shared head', not roi.with_shared_head
        for name in ('bbox_roi_extractor', 'mask_roi_extractor'):
            extractor = getattr(roi, name)
            yield name, type(extractor).__name__, type(extractor) is SingleRoIExtractor
            for layer in extractor.roi_layers:
                yield f'{name} roi_layer', type(layer).__name__, type(layer) is MMCVRoIAlign
                yield (f'{name} roi_layer', f'pool_mode={layer.pool_mode!r}',
                       layer.pool_mode == 'avg')
                yield f'{name} roi_layer', 'aligned=False', layer.aligned
        box = roi.bbox_head
        yield 'bbox_head', type(box).__name__, type(box) in (
            BBoxHead, ConvFCBBoxHead, Shared2FCBBoxHead, Shared4Conv1FCBBoxHead)
        yield 'bbox_head', 'no classifier', box.with_cls
        yield 'bbox_head', 'a custom classifier activation', not box.custom_cls_channels
        yield 'bbox_head', 'no box regression', box.with_reg
        yield 'bbox_head bbox_coder', type(box.bbox_coder).__name__, type(
            box.bbox_coder) is DeltaXYWHBBoxCoder
        yield 'mask_head', type(roi.mask_head).__name__, type(roi.mask_head) is FCNMaskHead
        for stage in ('rpn', 'rcnn'):
            nms_type = ((detector.test_cfg.get(stage) or {}).get('nms') or {}).get('type', 'nms')
            yield f'test_cfg.{stage}.nms type', nms_type, nms_type == 'nms'

    @staticmethod
    @torch.no_grad()
    def set_check_biases(detector: nn.Module) -> None:
        # mmdet's std-0.01 classifier gives every class ~1/(C + 1) after the softmax, below
        # score_thr 0.05; CHECK_CLASSES classes are lifted above it and the background below,
        # e.g. 0.12 each of 80 classes. The RPN is worth checking as initialised (scores near
        # 0.5, anchors that overlap). The mask logits read ReLU maps (all >= 0), so a class whose
        # random weights sum above or below 0 has masks almost full or almost empty (a few specks
        # that IoU cannot judge): weights of zero mean per class spread them around 0.5 instead.
        bias = detector.roi_head.bbox_head.fc_cls.bias
        bias.zero_()
        bias[:CHECK_CLASSES] = CHECK_CLASS_BIAS
        bias[-1] = CHECK_BACKGROUND_BIAS
        logits = detector.roi_head.mask_head.conv_logits
        logits.weight.sub_(logits.weight.mean(1, keepdim=True))
        logits.bias.zero_()

    def __init__(self, detector: nn.Module):
        super().__init__(detector)
        self.test_cfg = detector.test_cfg.to_dict()
        self.num_classes = detector.roi_head.bbox_head.num_classes
        rpn_cfg = detector.rpn_head.test_cfg
        self.rpn_nms_pre = int(rpn_cfg.get('nms_pre', -1))
        self.select_proposals = SelectDetections(rpn_cfg)
        self.select = SelectDetections(detector.roi_head.test_cfg)

    def network(self, img: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        feats = self.detector.extract_feat(img)
        cls_scores, bbox_preds = self.detector.rpn_head(feats)
        return tuple(feats) + tuple(cls_scores) + tuple(bbox_preds)

    def proposals(self, feats: Tuple[torch.Tensor, ...],
                  img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Step 1: (B, P, 4) proposals, P = ``rpn.max_per_img``, and (B, P) whether each is one
        (False: padding)."""
        scores, _, boxes, levels = dense_candidates(self.detector.rpn_head, feats, img,
                                                    self.rpn_nms_pre)
        proposals, levels = self.select_proposals(scores, levels, boxes)
        return proposals[..., :4], levels >= 0

    def detections(self, feats: Tuple[torch.Tensor, ...], img: torch.Tensor,
                   proposals: torch.Tensor,
                   valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Steps 2-3: ``dets`` (B, K, 5) and ``labels`` (B, K) from the box head."""
        from mmdet.structures.bbox import get_box_tensor
        head = self.detector.roi_head.bbox_head
        batch, num = valid.shape
        rois = proposals.reshape(-1, 4)
        cls_score, bbox_pred = head(extract_rois(self.detector.roi_head.bbox_roi_extractor, feats,
                                                 rois, _image_indices(proposals)))
        classes = head.num_classes
        scores = cls_score.softmax(-1)[:, :classes].reshape(batch, num, classes)
        scores = torch.where(valid.unsqueeze(-1), scores, scores.new_zeros(()))
        code = head.bbox_coder.encode_size
        regressed = 1 if head.reg_class_agnostic else classes
        boxes = get_box_tensor(head.bbox_coder.decode(
            rois.unsqueeze(1).expand(-1, regressed, 4).reshape(-1, 4),
            bbox_pred.reshape(-1, code)))
        if head.bbox_coder.clip_border:
            boxes = clip_to_input(boxes, img)
        boxes = boxes.reshape(batch, num, regressed, 4).expand(batch, num, classes, 4)
        labels = torch.arange(classes, device=img.device).expand(batch, num, classes)
        return self.select(scores.reshape(batch, -1), labels.reshape(batch, -1),
                           boxes.reshape(batch, -1, 4))

    def masks(self, feats: Tuple[torch.Tensor, ...], dets: torch.Tensor,
              labels: torch.Tensor) -> torch.Tensor:
        """Step 4: (B, K, M, M) mask probabilities of each detection's label (padding: 0)."""
        roi_head = self.detector.roi_head
        logits = roi_head.mask_head(extract_rois(roi_head.mask_roi_extractor, feats,
                                                 dets[..., :4].reshape(-1, 4),
                                                 _image_indices(dets)))
        own = labels.clamp(min=0).reshape(-1)
        if roi_head.mask_head.class_agnostic:
            own = torch.zeros_like(own)
        size = logits.shape[-2:]
        index = own.reshape(-1, 1, 1, 1).expand(-1, 1, size[0], size[1])
        masks = logits.gather(1, index).sigmoid().reshape(labels.shape[0], labels.shape[1],
                                                           size[0], size[1])
        return torch.where((labels >= 0).reshape(*labels.shape, 1, 1), masks,
                           masks.new_zeros(()))

    def forward(self, img: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.detector.extract_feat(img)
        proposals, valid = self.proposals(feats, img)
        dets, labels = self.detections(feats, img, proposals, valid)
        return dets, labels, self.masks(feats, dets, labels)
