"""``deployment/pairing.py``: when two runs' detections count as the same. A correct graph's boxes
pair however thin they are (a box narrower than a pixel, as random or half-trained weights give
them); a box that moved, a score that changed or a label that changed do not, and the report names
the detection left over and why."""
import numpy as np
import pytest

from mmdet_efficientvit.deployment.pairing import (BOX_ATOL, FOUND_AGAIN, box_iou,
                                                   match_detections, pairing_rule)


def dets(boxes, scores, labels):
    return dict(bboxes=np.array(boxes, np.float32).reshape(-1, 4),
                scores=np.array(scores, np.float32), labels=np.array(labels, np.int64))


# a regular box and the kind of box: 0.006 px wide, as NMS keeps it on RTMDet-tiny with
# random weights, and onnxruntime's copy of both (coordinates 1e-4 px off, scores 3.6e-7 off)
REF = dets([[10, 10, 50, 60], [112.772, 5.2, 112.778, 80.1]], [0.9, 0.41], [1, 2])
GOT = dets(REF['bboxes'] + np.float32(1e-4), REF['scores'] + np.float32(3.6e-7), REF['labels'])


def test_sub_pixel_box_pairs():
    """IoU alone cannot judge it (0.96 for 1e-4 px of noise), the coordinates can."""
    assert box_iou(REF['bboxes'][1:], GOT['bboxes'][1:])[0, 0] < 0.99
    pair = match_detections(REF, GOT)
    assert pair['ref'] == pair['got'] == pair['matched'] == 2 and pair['unpaired'] == ''
    assert sorted(pair['pairs']) == [(0, 0), (1, 1)]
    assert pair['max_box_diff'] < 2e-4 and pair['max_score_diff'] < 1e-6
    # the same comparison by IoU alone rejects the correct graph
    assert match_detections(REF, GOT, box_atol=0)['matched'] == 1


def test_zero_width_box_pairs_with_itself():
    box = dets([[30, 40, 30, 90]], [0.5], [0])  # clipped to nothing at the border: IoU 0
    assert box_iou(box['bboxes'], box['bboxes'])[0, 0] == 0
    assert match_detections(box, box)['matched'] == 1


def test_large_box_pairs_by_iou_beyond_the_pixel_tolerance():
    """Float noise on a large box may exceed 0.01 px: IoU judges it relative to its size."""
    big = dets([[0, 0, 600, 800]], [0.7], [3])
    moved = dets([[0.05, 0, 600.05, 800]], [0.7], [3])
    pair = match_detections(big, moved)
    assert pair['matched'] == 1 and pair['max_box_diff'] > BOX_ATOL


@pytest.mark.parametrize('shift', [0.05, 0.5])
def test_shifted_box_does_not_pair(shift):
    """Moved by 0.05 px (5x the tolerance: IoU of the thin box 0) or half a pixel (the regular box:
    IoU 0.98), a box is another box."""
    moved = dets(GOT['bboxes'] + np.float32(shift) * np.array([1, 0, 1, 0], np.float32),
                 GOT['scores'], GOT['labels'])
    pair = match_detections(REF, moved, names=('PyTorch', 'onnxruntime'))
    assert pair['matched'] == (1 if shift == 0.05 else 0)
    line = pair['unpaired']
    assert '\n' not in line and line.startswith("PyTorch's label ")
    assert f'nearest onnxruntime one of that label is {shift:.2g} px off' in line, line


def test_wrong_label_does_not_pair():
    other = dets(GOT['bboxes'], GOT['scores'], [1, 3])
    pair = match_detections(REF, other)
    assert pair['matched'] == 1 and pair['pairs'] == [(0, 0)]
    assert pair['unpaired'] == ("ref's label 2 score 0.41 box [112.77 5.20 112.78 80.10]: got has "
                                'none of that label')


def test_wrong_score_does_not_pair():
    other = dets(GOT['bboxes'], GOT['scores'] + np.array([0, 1e-3], np.float32), GOT['labels'])
    pair = match_detections(REF, other)
    assert pair['matched'] == 1
    assert pair['unpaired'].endswith('px off (IoU 0.967), score 0.001 off'), pair['unpaired']
    # a reduced precision is compared on label and box only
    assert match_detections(REF, other, **FOUND_AGAIN)['matched'] == 2


def test_extra_detection_is_reported_and_closest_candidate_chosen():
    """Each reference detection takes the closest agreeing one, so a near-duplicate does not steal
    the pair; what is left over on the other side is named."""
    ref = dets([[0, 0, 10, 10]], [0.8], [0])
    got = dets([[0.3, 0, 10.3, 10], [0, 0, 10, 10.001]], [0.8, 0.8], [0, 0])
    pair = match_detections(ref, got, min_iou=0.9)
    assert pair['pairs'] == [(0, 1)]
    assert pair['unpaired'].startswith("got's label 0 score 0.8 box [0.30 0.00 10.30 10.00]")


def test_empty_sides_and_the_rule_in_words():
    empty = dets([], [], [])
    assert match_detections(empty, empty)['unpaired'] == ''
    pair = match_detections(empty, REF)
    assert (pair['ref'], pair['got'], pair['matched']) == (0, 2, 0)
    assert pairing_rule() == ('same label, score within 0.0001, IoU > 0.99 or coordinates within '
                              '0.01 px')
    assert pairing_rule(**FOUND_AGAIN) == 'same label, IoU > 0.5 or coordinates within 0.01 px'
