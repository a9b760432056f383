"""Mask R-CNN end to end (``export_onnx.py --end2end``, ``deployment/end2end/two_stage.py``): the
graph against mmdet's own ``predict`` (boxes, and masks pasted by mmdet's ``_do_paste_mask``) for
our EfficientViT-M0 Mask R-CNN and mmdet's R50, the ``RoiAlign`` op against mmcv's ``roi_align``,
padding rows, the exporter with its metadata and an INT8 copy, and the refusals.

The models have random weights prepared as the exporter prepares them (randomised BatchNorm
weights, statistics measured on a random image, the box classifier's bias lifting four classes
above ``score_thr``), with a smaller ``test_cfg`` than COCO's so that the RoI heads run on a few
hundred proposals and ten detections: seconds, not minutes, on one core.
"""
import json

import numpy as np
import pytest
import torch

from _data import CONFIGS, load_tool

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import generate_demo_shapes  # noqa: E402
from mmdet_efficientvit.deployment.check_weights import (calibrate_batchnorm,  # noqa: E402
                                                        randomize_batchnorm)
from mmdet_efficientvit.deployment.end2end import (MASK_OUTPUT_CONVENTION,  # noqa: E402
                                                   MASK_OUTPUT_NAMES, Network, check_supported,
                                                   set_check_biases, wrap_end2end)
from mmdet_efficientvit.deployment.end2end.two_stage import RoIAlign  # noqa: E402
from mmdet_efficientvit.deployment.metadata import read_metadata  # noqa: E402
from mmdet_efficientvit.deployment.onnx_export import check_end2end, export_onnx  # noqa: E402
from mmdet_efficientvit.deployment.traceable import image_data_samples  # noqa: E402
from mmdet_efficientvit_runtime import OrtSession, paste_masks  # noqa: E402
from mmdet_efficientvit.errors import ConfigError  # noqa: E402
from mmdet_efficientvit.models.builders import build_detector  # noqa: E402
from mmdet_efficientvit.models.utils import deploy_model  # noqa: E402

EVIT_M0 = str(CONFIGS / 'mask_rcnn_evit_m0_fpn_1x_coco.py')
R50 = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
# 100 anchors per level at 128x160 leave fewer than 300 proposals after NMS: padding proposals
SMALL_TEST_CFG = dict(rpn=dict(nms_pre=100, max_per_img=300), rcnn=dict(max_per_img=10))
SIZES = [(128, 160), (173, 229)]  # the second not a multiple of 32 (odd map sizes)
CALIBRATION = (320, 480)  # a random image of this size measures the BatchNorm statistics


def random_detector(config: str) -> torch.nn.Module:
    """Random weights as ``export_onnx.py`` prepares them without a checkpoint, deployed."""
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector(
        config, cfg_options=dict(model=dict(test_cfg=SMALL_TEST_CFG))))
    calibrate_batchnorm(Network(wrap_end2end(model)), torch.randn(1, 3, *CALIBRATION))
    return deploy_model(set_check_biases(model))


def export_end2end(model: torch.nn.Module, path: str) -> str:
    return export_onnx(wrap_end2end(model), path, torch.randn(1, 3, *SIZES[0]),
                       MASK_OUTPUT_NAMES, output_axes={n: {0: 'batch'} for n in MASK_OUTPUT_NAMES})


@pytest.fixture(scope='module', params=[EVIT_M0, R50], ids=['evit-m0', 'mmdet-r50'])
def exported(request, tmp_path_factory, single_thread):
    model = random_detector(request.param)
    path = export_end2end(model, str(tmp_path_factory.mktemp('mask_rcnn') / 'e2e.onnx'))
    return model, path


def test_end2end_matches_predict(exported):
    """onnxruntime = mmdet predict at two sizes, batch 2: every detection paired (same label and
    score, the same box), pasted masks IoU > 0.98; the eager module equals predict exactly, masks included."""
    model, path = exported
    assert type(wrap_end2end(model)).__name__ == 'MaskRCNNEnd2End'
    torch.manual_seed(1)
    inputs = [torch.randn(2, 3, *size) for size in SIZES]
    records = check_end2end(path, model, inputs, min_match=1.0)
    assert all(r['ref'] == r['got'] == r['matched'] == 2 * 10 for r in records)
    assert all(r['masks'] >= 15 and r['min_mask_iou'] > 0.98 for r in records)
    assert all(r['max_box_diff'] < 1e-2 and r['max_score_diff'] < 1e-4 for r in records)
    dets, labels, masks = OrtSession(path).run({'input': inputs[1].numpy()})
    assert dets.shape == (2, 10, 5) and labels.dtype == np.int64
    assert masks.shape == (2, 10, 28, 28) and masks.dtype == np.float32
    assert 0 <= masks.min() and masks.max() <= 1

    x = inputs[0]
    e2e = wrap_end2end(model)
    with torch.no_grad():
        ref = model.predict(x, image_data_samples(x))
        dets, labels, masks = e2e(x)
        _, valid = e2e.proposals(model.extract_feat(x), x)
    assert 0 < int(valid.sum(1).max()) < valid.shape[1]  # padding proposals take part
    for i, sample in enumerate(ref):
        pred = sample.pred_instances
        torch.testing.assert_close(dets[i, :, :4], pred.bboxes)
        torch.testing.assert_close(dets[i, :, 4], pred.scores)
        assert torch.equal(labels[i], pred.labels)
        pasted = paste_masks(masks[i].numpy(), dets[i, :, :4].numpy(), *x.shape[2:], 0.5)
        np.testing.assert_array_equal(pasted, pred.masks.numpy())  # the runtime's pasting


def test_check_fails_on_wrong_masks(exported):
    """The mask check is real: the graph's own boxes with each mask transposed (a mask of the right
    size and values, but not the box's) are rejected."""
    model, path = exported

    class Transposed:
        def __init__(self, session):
            self.session = session

        @property
        def output_names(self):
            return self.session.output_names

        def run(self, feeds):
            dets, labels, masks = self.session.run(feeds)
            return dets, labels, masks.transpose(0, 1, 3, 2).copy()

    torch.manual_seed(1)
    x = torch.randn(2, 3, *SIZES[0])  # test_end2end_matches_predict's first input: masks judged
    with pytest.raises(RuntimeError, match='a pasted mask has IoU'):
        check_end2end(path, model, [x], session=Transposed(OrtSession(path)))


def test_backbone_maps_are_contiguous(exported):
    """mmcv's RoIAlign reads its input as contiguous NCHW whatever the strides: the channels-last
    maps inside EfficientViT must not reach it (predict would pool garbage)."""
    model, _ = exported
    with torch.no_grad():
        assert all(f.is_contiguous() for f in model.extract_feat(torch.randn(1, 3, *SIZES[1])))


@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_matches_mmcv(tmp_path, sampling_ratio):
    """ONNX RoiAlign (half_pixel) in onnxruntime = mmcv's roi_align(aligned=True): fractional,
    partly outside, empty and large boxes, two images, stride 4 and 16."""
    from mmcv.ops import roi_align

    boxes = torch.tensor([[3.3, 5.1, 40.7, 30.2], [0., 0., 0., 0.], [-5., -3., 10., 8.],
                          [10., 9., 159., 127.], [10.2, 10.1, 12.9, 11.3],
                          [150., 120., 170., 140.]])
    batch_indices = torch.tensor([0, 0, 1, 1, 0, 1])

    class Pool(torch.nn.Module):
        def forward(self, feat):
            return tuple(RoIAlign.apply(feat[:, :, ::s, ::s], boxes, batch_indices, (7, 7), 1 / s,
                                        sampling_ratio) for s in (4, 16))

    feat = torch.randn(2, 8, 128, 160)
    path = export_onnx(Pool(), str(tmp_path / 'roi_align.onnx'), feat, ['s4', 's16'],
                       output_axes={'s4': {}, 's16': {}})
    got = OrtSession(path).run({'input': feat.numpy()})
    rois = torch.cat([batch_indices[:, None].float(), boxes], 1)
    for g, s in zip(got, (4, 16)):
        ref = roi_align(feat[:, :, ::s, ::s].contiguous(), rois, (7, 7), 1 / s, sampling_ratio,
                        'avg', True)
        np.testing.assert_allclose(g, ref.numpy(), atol=1e-5)
        assert np.abs(ref.numpy()).max() > 0.5


def test_padding_rows_when_few_detections(exported):
    """A high score threshold leaves few detections: the other rows are (0, 0, 0, 0, 0), label
    -1 and an all-zero mask."""
    model, _ = exported
    x = torch.randn(1, 3, *SIZES[0])
    with torch.no_grad():
        scores = model.predict(x, image_data_samples(x))[0].pred_instances.scores
    cfg = model.roi_head.test_cfg
    cfg.score_thr, before = float(scores[3]), cfg.score_thr  # keeps 3 (ties aside)
    try:
        with torch.no_grad():
            dets, labels, masks = wrap_end2end(model)(x)
            ref = model.predict(x, image_data_samples(x))[0].pred_instances
    finally:
        cfg.score_thr = before
    n = len(ref.scores)
    assert 0 < n < 10 and int((labels >= 0).sum()) == n
    assert (dets[0, n:] == 0).all() and (labels[0, n:] == -1).all() and (masks[0, n:] == 0).all()
    assert (masks[0, :n] > 0).all()


@pytest.mark.slow
def test_export_tool_metadata_and_int8(tmp_path, capsys, single_thread):
    """The exporter on a Mask R-CNN-M0 config without a checkpoint: both sizes checked (boxes and
    pasted masks), the mask convention and test_cfg in the metadata, and an INT8 copy that still
    finds boxes and masks on images. Slow (about 90 s on one core): onnxruntime's quantizer spends
    half of it rewriting the graph, the calibration runs the RoI heads on every tensor's range."""
    from mmdet_efficientvit.deployment.image_inputs import image_inputs
    data = generate_demo_shapes(str(tmp_path / 'shapes'), num_train=2, num_val=1,
                                img_size=(160, 128), seed=0)
    cfg = tmp_path / 'mask_rcnn_m0_small.py'
    cfg.write_text(f'_base_ = {EVIT_M0!r}\nmodel = dict(test_cfg={SMALL_TEST_CFG!r})\n')
    out = tmp_path / 'm0.onnx'
    load_tool('deployment/export_onnx.py').main(
        [str(cfg), '--end2end', '--shape', '128x160', '--check-sizes', '128x160', '173x229',
         '--check-batch', '2', '--quantize', 'int8', '--calib-dir', data['train_img_dir'],
         '--calib-num', '2', '--out', str(out)])
    text = capsys.readouterr().out
    for size in ['128, 160', '173, 229']:
        assert f'at (2, 3, {size}): 20/20 detections match' in text, text
    assert text.count('pasted masks IoU >= ') == 2 and text.count(': OK') == 2
    assert 'INT8 vs float at (2, 3, 128, 160): 20 detections' in text

    import onnx
    graph = onnx.load(str(out)).graph
    assert [o.name for o in graph.output] == list(MASK_OUTPUT_NAMES)
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == [
        'batch', '', 'height', 'width']
    assert {n.op_type for n in graph.node} >= {'RoiAlign', 'NonMaxSuppression'}
    meta = read_metadata(str(out))
    assert meta['outputs'] == MASK_OUTPUT_CONVENTION
    test_cfg = json.loads(meta['test_cfg'])
    assert test_cfg['rcnn']['mask_thr_binary'] == 0.5 and test_cfg['rpn']['max_per_img'] == 300
    assert len(json.loads(meta['classes'])) == 80

    int8 = OrtSession(str(tmp_path / 'm0.int8.onnx'))
    image = image_inputs(str(out), data['val_img_dir'], 1, '--check-images')[0]
    dets, labels, masks = int8.run({'input': image})
    keep = labels[0] >= 0
    assert keep.sum() > 0 and masks.shape == (1, 10, 28, 28)
    assert ((dets[0, keep, 2:4] >= dets[0, keep, :2]).all()
            and (dets[0, keep, 2:4] <= image.shape[:1:-1]).all())
    assert (masks[0, keep] > 0).any() and (masks[0, ~keep] == 0).all()


def test_unsupported_refused(tmp_path):
    """One line naming every supported family, Mask R-CNN included, and what this model has:
    Faster R-CNN (no masks), a Mask R-CNN whose RoI pooling is max; RoiAlign needs opset 16; a
    Mask R-CNN without --end2end (raw head maps are single-stage only) is told to pass it."""
    faster = build_detector('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    with pytest.raises(ConfigError) as err:
        check_supported(faster)
    message = str(err.value)
    assert '\n' not in message and message.endswith('this model has detector FasterRCNN')
    for family in ('RetinaNet (', '; RTMDet (', '; Mask R-CNN (', 'mask-rcnn_r50_fpn_1x_coco.py'):
        assert family in message
    max_pool = build_detector(EVIT_M0, cfg_options=dict(model=dict(roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(pool_mode='max'))))))
    with pytest.raises(ConfigError,
                       match="this model has bbox_roi_extractor roi_layer pool_mode='max'$"):
        wrap_end2end(max_pool)
    with pytest.raises(ConfigError, match='needs --opset 16 or later, got 15$'):
        load_tool('deployment/export_onnx.py').main(
            [EVIT_M0, '--end2end', '--opset', '15', '--out', str(tmp_path / 'x.onnx')])
    with pytest.raises(ConfigError, match='not a single-stage detector.*pass --end2end'):
        load_tool('deployment/export_onnx.py').main([EVIT_M0, '--out', str(tmp_path / 'x.onnx')])
    assert not (tmp_path / 'x.onnx').exists()
