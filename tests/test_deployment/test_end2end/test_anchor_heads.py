"""RetinaNet end to end (``export_onnx.py --end2end``, ``deployment/end2end/anchor_heads.py``): the graph
equals mmdet's ``predict`` box for box, pads with label -1, traces anchors for every size, records its
metadata; mmdet's own RetinaNet exports the same way. References are mmdet's ``predict`` and
``grid_priors``, independent of the code under test."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES  # noqa: E402
from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm  # noqa: E402
from mmdet_efficientvit.deployment.end2end import check_supported, wrap_end2end  # noqa: E402
from mmdet_efficientvit.deployment.metadata import read_metadata  # noqa: E402
from mmdet_efficientvit.deployment.onnx_export import check_end2end, export_onnx  # noqa: E402
from mmdet_efficientvit.deployment.traceable import image_data_samples  # noqa: E402
from mmdet_efficientvit.errors import ConfigError  # noqa: E402
from mmdet_efficientvit.models.builders import build_detector  # noqa: E402
from mmdet_efficientvit.models.utils import deploy_model  # noqa: E402
from mmdet_efficientvit_runtime import OrtSession  # noqa: E402

from _deploy import RETINANET_SCALE as SCALE  # noqa: E402


@pytest.fixture(scope='module')
def detector(retinanet_e2e):
    return deploy_model(build_detector(retinanet_e2e['cfg'], checkpoint=retinanet_e2e['ckpt']))


def test_end2end_matches_predict(retinanet_e2e, detector):
    """onnxruntime detections = mmdet predict (with NMS): two sizes (windowed / one-window stages),
    batch 2, every box paired; the eager wrapper equals predict exactly."""
    torch.manual_seed(1)
    inputs = [torch.randn(2, 3, 128, 192), torch.randn(1, 3, 512, 640)]
    records = check_end2end(retinanet_e2e['onnx'], detector, inputs, score_atol=1e-5, min_match=1.0)
    assert [r['shape'][0] for r in records] == [2, 1]
    assert all(r['ref'] == r['got'] == r['matched'] > 10 for r in records)
    assert all(r['max_box_diff'] < 1e-2 for r in records)
    dets, labels = OrtSession(retinanet_e2e['onnx']).run({'input': inputs[0].numpy()})
    assert dets.shape == (2, 20, 5) and labels.dtype == np.int64  # K = test_cfg.max_per_img

    with torch.no_grad():
        ref = detector.predict(inputs[0], image_data_samples(inputs[0]))
        eager_dets, eager_labels = wrap_end2end(detector)(inputs[0])
    for i, sample in enumerate(ref):
        pred = sample.pred_instances
        n = len(pred.scores)
        torch.testing.assert_close(eager_dets[i, :n, :4], pred.bboxes)
        torch.testing.assert_close(eager_dets[i, :n, 4], pred.scores)
        assert torch.equal(eager_labels[i, :n], pred.labels)
        assert (eager_labels[i, n:] == -1).all() and (eager_dets[i, n:] == 0).all()


def test_padding_rows_when_few_detections(retinanet_e2e, detector):
    """A high score threshold leaves few boxes: the rest are (0, 0, 0, 0, 0) with label -1."""
    x = torch.randn(1, 3, 128, 192)
    with torch.no_grad():
        scores = detector.predict(x, image_data_samples(x))[0].pred_instances.scores
    detector.bbox_head.test_cfg.score_thr = float(scores[4])  # keeps about 4
    try:
        e2e = wrap_end2end(detector)
        with torch.no_grad():
            dets, labels = e2e(x)
            ref = detector.predict(x, image_data_samples(x))[0].pred_instances
    finally:
        detector.bbox_head.test_cfg.score_thr = 0.0
    n = len(ref.scores)
    assert 0 < n < 20 and int((labels >= 0).sum()) == n
    assert (dets[0, n:] == 0).all() and (labels[0, n:] == -1).all()


def test_anchors_follow_input_size(detector, tmp_path):
    """The head's grid_priors traced into ONNX once give mmdet's anchors at other sizes."""
    prior_generator = detector.bbox_head.prior_generator
    strides = [s[0] for s in prior_generator.strides]

    class Anchors(torch.nn.Module):
        def forward(self, x):
            sizes = [x[:, :, ::s, ::s].shape[-2:] for s in strides]
            return tuple(prior_generator.grid_priors(sizes, device=x.device))

    path = export_onnx(Anchors(), str(tmp_path / 'anchors.onnx'), torch.zeros(1, 1, 64, 96),
                       output_axes={f'output{i}': {0: f'n{i}'} for i in range(len(strides))})
    session = OrtSession(path)
    for h, w in [(64, 96), (100, 37), (800, 1216)]:
        got = session.run({'input': np.zeros((1, 1, h, w), np.float32)})
        ref = prior_generator.grid_priors([(-(-h // s), -(-w // s)) for s in strides], device='cpu')
        for g, r in zip(got, ref):
            np.testing.assert_array_equal(g, r.numpy())


def test_metadata(retinanet_e2e):
    meta = read_metadata(retinanet_e2e['onnx'])
    pre = json.loads(meta['preprocess'])
    assert pre == dict(scale=list(SCALE), keep_ratio=True, interpolation='bilinear',
                       image_pad=None, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                       bgr_to_rgb=True, pad_size_divisor=32, pad_value=0.0)
    assert json.loads(meta['classes']) == list(DEMO_SHAPES_CLASSES)
    assert json.loads(meta['test_cfg'])['max_per_img'] == 20
    assert 'label -1' in meta['outputs'] and meta['config'] == retinanet_e2e['cfg']
    assert 'EfficientViT' in meta['config_text']


def test_unsupported_detector_refused():
    faster_rcnn = build_detector('mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py')
    with pytest.raises(ConfigError,
                       match='supports RetinaNet.*this model has detector FasterRCNN') as err:
        check_supported(faster_rcnn)
    assert '\n' not in str(err.value)


def test_mmdet_retinanet_r18(tmp_path):
    """mmdet's own RetinaNet exports the same way and matches its predict at two sizes."""
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector('mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'))
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)
    deploy_model(model)
    path = export_onnx(wrap_end2end(model), str(tmp_path / 'r18.onnx'),
                       torch.randn(1, 3, 128, 128), ['dets', 'labels'],
                       output_axes={'dets': {0: 'batch'}, 'labels': {0: 'batch'}})
    records = check_end2end(path, model, [torch.randn(2, 3, 128, 128), torch.randn(1, 3, 160, 224)],
                            min_match=1.0)
    assert all(r['ref'] == r['matched'] == r['got'] > 50 for r in records)
