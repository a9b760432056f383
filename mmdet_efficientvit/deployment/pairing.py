"""Whether two runs gave the same detections: the one pairing rule of every comparison in the
project (the exporter's check against ``predict``, INT8 against float, OpenVINO against onnxruntime,
mmdeploy's graph against ours).

Two detections pair when they have the same label, scores within ``score_atol`` and the same box:
IoU > ``min_iou`` **or** every coordinate within ``box_atol`` pixels. The two box tests cover each
other's blind spot. IoU is relative to the box size: 0.99 lets a 100 px box shift by up to 0.5 px,
room for the float rounding of a large box (deltas times a 600 px anchor), but it cannot judge a box
narrower than a pixel: a box 0.006 px wide whose coordinates agree to 1e-4 px has IoU 0.96, and one
clipped to zero width has IoU 0 even with itself. The pixel test is absolute: 1e-2 px is 40 times
the float32 spacing below 4096 px (2.4e-4 px) and above the largest box difference measured between
onnxruntime and ``predict`` (4.4e-3 px, Mask R-CNN-R50 with random weights, docs/deployment.md),
yet far below what a real error moves a box by (a wrong stride, prior offset or rescale: half a
pixel or more). Scores are probabilities, compared absolutely; a different label never pairs.

Only numpy: the comparison runs wherever detections are read.
"""
from typing import Dict, Sequence

import numpy as np

MIN_IOU = 0.99
BOX_ATOL = 1e-2  # px
SCORE_ATOL = 1e-4
# A reduced precision (INT8, bf16) against float: the same object found again, IoU > 0.5 as COCO's
# AP50 counts a hit, whatever the precision did to its score (judged by mAP, or separately)
FOUND_AGAIN = dict(min_iou=0.5, score_atol=np.inf)

Detections = Dict[str, np.ndarray]  # bboxes (N, 4) x1y1x2y2, scores (N,), labels (N,)


def pairing_rule(min_iou: float = MIN_IOU, box_atol: float = BOX_ATOL,
                 score_atol: float = SCORE_ATOL) -> str:
    """The rule in words, for reports: 'same label, score within 0.0001, IoU > 0.99 or coordinates
    within 0.01 px'."""
    score = '' if np.isinf(score_atol) else f'score within {score_atol:g}, '
    return f'same label, {score}IoU > {min_iou:g} or coordinates within {box_atol:g} px'


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of x1y1x2y2 boxes; 0 where both have no area."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def match_detections(ref: Detections, got: Detections, min_iou: float = MIN_IOU,
                     box_atol: float = BOX_ATOL, score_atol: float = SCORE_ATOL,
                     names: Sequence[str] = ('ref', 'got')) -> Dict:
    """Pair each detection of ``ref`` (best score first) with the closest unpaired one of ``got``
    that agrees with it (the module's rule); ``score_atol=np.inf`` pairs on label and box alone.

    Returns ``dict(ref, got, matched, max_score_diff, max_box_diff, pairs, unpaired)``: counts, the
    largest differences over the pairs, ``pairs`` as (index in ref, index in got), and ``unpaired``,
    one line on the best-scored detection left over and its nearest candidate of the same label
    ('' when all pair; ``names`` name the two sides in it).
    """
    ref, got = _as_arrays(ref), _as_arrays(got)
    off = np.abs(ref['bboxes'][:, None] - got['bboxes'][None]).max(-1)  # (N, M) worst coordinate
    iou = box_iou(ref['bboxes'], got['bboxes'])
    score_diff = np.abs(ref['scores'][:, None] - got['scores'][None])
    agree = ((ref['labels'][:, None] == got['labels'][None]) & (score_diff <= score_atol)
             & ((iou > min_iou) | (off <= box_atol)))
    ref_left, got_left = np.ones(len(ref['scores']), bool), np.ones(len(got['scores']), bool)
    pairs = []
    for i in np.argsort(-ref['scores'], kind='stable'):
        candidates = agree[i] & got_left
        if candidates.any():
            j = int(np.argmin(np.where(candidates, off[i], np.inf)))
            ref_left[i] = got_left[j] = False
            pairs.append((int(i), j))
    rows, cols = (list(index) for index in zip(*pairs)) if pairs else ([], [])
    if ref_left.any():
        unpaired = _nearest(ref, got, ref_left, off, iou, score_diff, names)
    elif got_left.any():
        unpaired = _nearest(got, ref, got_left, off.T, iou.T, score_diff.T, names[::-1])
    else:
        unpaired = ''
    return dict(ref=len(ref_left), got=len(got_left), matched=len(pairs), pairs=pairs,
                max_score_diff=float(score_diff[rows, cols].max(initial=0.)),
                max_box_diff=float(off[rows, cols].max(initial=0.)), unpaired=unpaired)


def _as_arrays(dets: Detections) -> Detections:
    return dict(bboxes=np.asarray(dets['bboxes'], np.float64).reshape(-1, 4),
                scores=np.asarray(dets['scores'], np.float64), labels=np.asarray(dets['labels']))


def _nearest(this: Detections, other: Detections, left: np.ndarray, off: np.ndarray,
             iou: np.ndarray, score_diff: np.ndarray, names: Sequence[str]) -> str:
    """"<name>'s label L score S box [..]: nearest <other name> one of that label is .. px off"
    for the best-scored detection of ``this`` left unpaired (``left``)."""
    i = int(np.flatnonzero(left)[np.argmax(this['scores'][left])])
    label = this['labels'][i]
    box = ' '.join(f'{v:.2f}' for v in this['bboxes'][i])
    text = f"{names[0]}'s label {label} score {this['scores'][i]:.3g} box [{box}]"
    same = np.flatnonzero(other['labels'] == label)
    if not len(same):
        return f'{text}: {names[1]} has none of that label'
    j = int(same[np.argmin(off[i, same])])
    return (f'{text}: nearest {names[1]} one of that label is {off[i, j]:.2g} px off (IoU '
            f'{iou[i, j]:.3f}), score {score_diff[i, j]:.2g} off')
