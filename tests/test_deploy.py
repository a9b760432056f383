"""Deployment without PyTorch: the end-to-end RetinaNet graph (``export_onnx.py --end2end``), its
metadata, ``onnx_inference.py`` (no torch, COCO evaluation, bad input) and INT8 quantization.

One small RetinaNet-M0 (32-channel neck and head, 4 classes, random weights with randomised BN and a
zero classification bias, so scores spread around 0.5 and NMS has work) is saved as an mmengine
checkpoint and exported once per module on generated DemoShapes images. References are independent
of the code under test: mmdet's own ``predict`` / ``inference_detector``, ``grid_priors`` and
``CocoMetric``.
"""
import json
import re
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from _data import REPO, RUNTIME, error_line, load_tool, mmdet_predictions, tiny_config, tool_env

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import (DEMO_SHAPES_CLASSES,  # noqa: E402
                                                     generate_demo_shapes)
from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm  # noqa: E402
from mmdet_efficientvit.deployment.end2end import check_supported, wrap_end2end  # noqa: E402
from mmdet_efficientvit.deployment.metadata import read_metadata  # noqa: E402
from mmdet_efficientvit.deployment.onnx_export import check_end2end, export_onnx  # noqa: E402
from mmdet_efficientvit.deployment.pairing import FOUND_AGAIN, match_detections  # noqa: E402
from mmdet_efficientvit.deployment.traceable import image_data_samples  # noqa: E402
from mmdet_efficientvit.errors import ConfigError  # noqa: E402
from mmdet_efficientvit.models.builders import build_detector  # noqa: E402
from mmdet_efficientvit.models.utils import deploy_model  # noqa: E402
import mmdet_efficientvit_runtime  # noqa: E402
from mmdet_efficientvit_runtime import OrtSession  # noqa: E402

# DemoShapes images of 96x64 resized by the test pipeline (keep ratio, scale 192x128) to 192x128:
# a multiple of the pad divisor (32), so mmdet's clipping to the image and the graph's clipping to
# the padded input coincide and the two pipelines must agree box for box.
IMG_SIZE = (96, 64)
SCALE = (192, 128)
NUM_VAL = 6


@pytest.fixture(scope='module')
def setup(tmp_path_factory, single_thread):
    """Data, config, checkpoint and the exported end-to-end graph (through the tool)."""
    root = tmp_path_factory.mktemp('deploy')
    data = generate_demo_shapes(str(root / 'shapes'), num_train=4, num_val=NUM_VAL,
                                img_size=IMG_SIZE, seed=3)
    cfg = tiny_config(root / 'tiny.py', root / 'shapes', img_size=SCALE)
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector(str(cfg)), seed=0)
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)
    ckpt = root / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    onnx_path = root / 'tiny_e2e.onnx'
    load_tool('deployment/export_onnx.py').main(
        [str(cfg), '--checkpoint', str(ckpt), '--end2end', '--shape', '128x192',
         '--check-sizes', '128x192', '--check-batch', '2', '--out', str(onnx_path)])
    return dict(root=root, data=data, cfg=str(cfg), ckpt=str(ckpt), onnx=str(onnx_path))


@pytest.fixture(scope='module')
def detector(setup):
    return deploy_model(build_detector(setup['cfg'], checkpoint=setup['ckpt']))


@pytest.fixture(scope='module')
def inference():
    return mmdet_efficientvit_runtime


def test_end2end_matches_predict(setup, detector):
    """onnxruntime detections = mmdet predict (with NMS): two sizes (windowed / one-window stages),
    batch 2, every box paired; the eager wrapper equals predict exactly."""
    torch.manual_seed(1)
    inputs = [torch.randn(2, 3, 128, 192), torch.randn(1, 3, 512, 640)]
    records = check_end2end(setup['onnx'], detector, inputs, score_atol=1e-5, min_match=1.0)
    assert [r['shape'][0] for r in records] == [2, 1]
    assert all(r['ref'] == r['got'] == r['matched'] > 10 for r in records)
    assert all(r['max_box_diff'] < 1e-2 for r in records)
    dets, labels = OrtSession(setup['onnx']).run({'input': inputs[0].numpy()})
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


def test_padding_rows_when_few_detections(setup, detector):
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


def test_metadata(setup):
    meta = read_metadata(setup['onnx'])
    pre = json.loads(meta['preprocess'])
    assert pre == dict(scale=list(SCALE), keep_ratio=True, interpolation='bilinear',
                       image_pad=None, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                       bgr_to_rgb=True, pad_size_divisor=32, pad_value=0.0)
    assert json.loads(meta['classes']) == list(DEMO_SHAPES_CLASSES)
    assert json.loads(meta['test_cfg'])['max_per_img'] == 20
    assert 'label -1' in meta['outputs'] and meta['config'] == setup['cfg']
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


# ------------------------------------------------------------------------------ onnx_inference.py
def test_onnx_inference_matches_mmdet_pipeline_and_coco_metric(setup, inference, tmp_path, capsys):
    """On images (not tensors) the tool gives mmdet's detections in original pixels, and its
    pycocotools mAP equals mmdet's CocoMetric on the same predictions.

    The ground truth is mmdet's own top detections, so a tool that read, resized, normalised or
    rescaled differently from mmdet would score far below 1.
    """
    from mmdet.evaluation import CocoMetric
    val = setup['data']
    ann = json.load(open(val['val_ann']))
    paths = [os.path.join(val['val_img_dir'], im['file_name']) for im in ann['images']]
    reference = mmdet_predictions(setup['cfg'], setup['ckpt'], paths)
    session, meta = inference.load_model(setup['onnx'])
    ours = [r for _, _, r, _ in inference.detect(session, meta, paths, batch_size=2)]
    for ref, got in zip(reference, ours):
        pair = match_detections(ref, got)
        assert pair['ref'] == pair['got'] == pair['matched'] > 5
        assert pair['max_score_diff'] < 1e-4

    # ground truth: mmdet's detections scoring >= 0.5 (category ids 1..4 as in the file)
    gt = []
    for im, ref in zip(ann['images'], reference):
        for (x1, y1, x2, y2), score, label in zip(ref['bboxes'], ref['scores'], ref['labels']):
            if score >= 0.5:
                gt.append(dict(id=len(gt) + 1, image_id=im['id'], category_id=int(label) + 1,
                               bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                               area=float((x2 - x1) * (y2 - y1)), iscrowd=0))
    assert len(gt) > 2 * NUM_VAL
    gt_file = tmp_path / 'gt.json'
    gt_file.write_text(json.dumps(dict(ann, annotations=gt)))
    out = tmp_path / 'out'
    stats = inference.main([setup['onnx'], val['val_img_dir'], '--eval', str(gt_file),
                            '--out-dir', str(out), '--threads', '1', '--profile'])['bbox']
    assert stats[0] > 0.95
    assert len(list(out.glob('*.png'))) == NUM_VAL
    printed = capsys.readouterr().out
    line = re.search(r'onnxruntime node time by operator: (.*)', printed).group(1)
    shares = {op: float(pct) for op, pct in re.findall(r'(\w+) (\d+\.\d)%', line)}
    # each share is printed to 0.1%, so the sum may exceed 100 by 0.05% per share
    assert shares['Conv'] > 5 and 'TopK' in shares
    assert sum(shares.values()) <= 100 + 0.05 * len(shares) + 1e-9
    line = re.search(r'onnxruntime node time by part: (.*)', printed).group(1)
    parts = {p: float(pct) for p, pct in re.findall(r'(\w+) (\d+\.\d)%', line)}
    assert {'backbone', 'neck', 'bbox_head', 'other'} <= set(parts)
    assert sum(parts.values()) <= 100 + 0.05 * len(parts) + 1e-9

    records = json.load(open(out / 'results.bbox.json'))
    metric = CocoMetric(ann_file=str(gt_file), metric='bbox')
    metric.dataset_meta = dict(classes=DEMO_SHAPES_CLASSES)
    preds = []
    for im in ann['images']:
        mine = [r for r in records if r['image_id'] == im['id']]
        boxes = np.array([r['bbox'] for r in mine], np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        preds.append(dict(img_id=im['id'], bboxes=boxes,
                          scores=np.array([r['score'] for r in mine], np.float32),
                          labels=np.array([r['category_id'] - 1 for r in mine])))
    mmdet_map = metric.compute_metrics([({}, p) for p in preds])['bbox_mAP']
    assert abs(stats[0] - mmdet_map) <= 0.002


BLOCKER = """
import runpy, sys
BLOCKED = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdet_efficientvit')
tried = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            tried.append(name)
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print('IMPORT ATTEMPTS', sorted(set(tried)), [m for m in sys.modules if m.split('.')[0] in BLOCKED])
    if 'mmdet_efficientvit_runtime' in sys.modules:
        print('RUNTIME', sys.modules['mmdet_efficientvit_runtime'].__file__)
"""


@pytest.mark.slow
@pytest.mark.parametrize('script', ['copied runtime', 'tool in the checkout'])
def test_onnx_inference_without_torch(setup, tmp_path, script):
    """With torch, mmcv, mmengine, mmdet and our package unimportable, the runtime module copied
    alone to another folder (a machine without them) runs, and so does ``onnx_inference.py`` in the
    checkout, which imports the module (found at the repository root, nothing installed): both skip
    an unreadable image and name it."""
    images = tmp_path / 'images'
    images.mkdir()
    for name in sorted(os.listdir(setup['data']['val_img_dir']))[:2]:
        (images / name).write_bytes(open(os.path.join(setup['data']['val_img_dir'], name), 'rb').read())
    (images / 'broken.jpg').write_bytes(b'not a jpeg')
    if script == 'copied runtime':
        path = tmp_path / RUNTIME.name  # run from outside the repository
        path.write_text(RUNTIME.read_text())
    else:
        path = REPO / 'tools' / 'deployment' / 'onnx_inference.py'
    proc = subprocess.run(
        [sys.executable, '-c', BLOCKER, str(path), setup['onnx'], str(images),
         '--out-dir', str(tmp_path / 'out'), '--score-thr', '0.5'],
        cwd=tmp_path, env=tool_env(PYTHONPATH=''), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'IMPORT ATTEMPTS [] []' in proc.stdout
    if script == 'tool in the checkout':  # the module was imported, not run as a script
        assert 'RUNTIME ' in proc.stdout, proc.stdout
    assert f'skipped {images / "broken.jpg"}: not a readable image' in proc.stderr
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == sorted(
        n.replace('.jpg', '.png') for n in os.listdir(images) if n != 'broken.jpg')
    assert proc.stdout.count('detections >= 0.5') == 2


def test_onnx_inference_bad_input(setup, inference, tmp_path, capsys):
    val = setup['data']
    out = str(tmp_path / 'out')
    # missing and corrupt models, and a graph without the end-to-end outputs and metadata
    assert 'not found' in error_line(capsys, inference.main,
                                     [str(tmp_path / 'no.onnx'), val['val_img_dir']])
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x08garbage')
    assert 'not a model onnxruntime can load' in error_line(capsys, inference.main,
                                                            [str(bad), val['val_img_dir']])
    import onnx
    from onnx import TensorProto, helper
    plain = helper.make_model(helper.make_graph(
        [helper.make_node('Identity', ['input'], ['out'])], 'g',
        [helper.make_tensor_value_info('input', TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1])]),
        opset_imports=[helper.make_opsetid('', 17)])
    onnx.save(plain, tmp_path / 'plain.onnx')
    assert '--end2end' in error_line(capsys, inference.main, [str(tmp_path / 'plain.onnx'), out])

    # an annotation file of other images, and one of other classes
    ann = json.load(open(val['val_ann']))
    other = tmp_path / 'other.json'
    other.write_text(json.dumps(dict(ann, images=[dict(ann['images'][0], file_name='elsewhere.jpg')])))
    err = error_line(capsys, inference.main,
                     [setup['onnx'], val['val_img_dir'], '--eval', str(other), '--out-dir', out])
    assert '1 of the 1 images' in err and 'elsewhere.jpg' in err and 'image folder' in err
    other.write_text(json.dumps(dict(ann, categories=[dict(id=1, name='cat')])))
    err = error_line(capsys, inference.main,
                     [setup['onnx'], val['val_img_dir'], '--eval', str(other), '--out-dir', out])
    assert 'has no categories' in err
    assert not os.path.exists(out)  # nothing written before the checks

    # results already there are not overwritten
    os.makedirs(out)
    first = os.path.join(out, sorted(os.listdir(val['val_img_dir']))[0].replace('.jpg', '.png'))
    open(first, 'w').write('mine')
    err = error_line(capsys, inference.main, [setup['onnx'], val['val_img_dir'], '--out-dir', out])
    assert 'already exists' in err and '--overwrite' in err
    assert open(first).read() == 'mine'


# ------------------------------------------------------------------------------ INT8
def test_int8_produces_boxes(setup, capsys):
    """``--quantize int8`` (QDQ, per-channel) calibrated on images read as onnx_inference.py reads
    them: the network's Conv/MatMul get quantized, the post-processing stays float, the float model
    is kept, and the INT8 model still detects."""
    import onnx

    from mmdet_efficientvit.deployment.image_inputs import image_inputs
    from mmdet_efficientvit.deployment.quantize import QUANTIZED_OPS
    tool = load_tool('deployment/export_onnx.py')
    args = tool.parse_args([setup['cfg'], '--end2end', '--quantize', 'int8', '--calib-dir',
                            setup['data']['train_img_dir'], '--calib-num', '2'])
    before = open(setup['onnx'], 'rb').read()
    path = tool.quantize(args, setup['onnx'], [torch.randn(1, 3, 128, 192)])
    assert path == setup['onnx'][:-len('.onnx')] + '.int8.onnx'
    assert open(setup['onnx'], 'rb').read() == before
    text = capsys.readouterr().out
    assert 'calibrated on 2 images' in text and 'INT8 vs float at (1, 3, 128, 192)' in text
    inputs = image_inputs(setup['onnx'], setup['data']['val_img_dir'], 1, '--check-images')
    assert inputs[0].shape == (1, 3, SCALE[1], SCALE[0])
    graph = onnx.load(path).graph
    dequantized = {o for n in graph.node if n.op_type == 'DequantizeLinear' for o in n.output}
    consumers = {n.op_type for n in graph.node if dequantized.intersection(n.input)}
    assert set(QUANTIZED_OPS) <= consumers  # every quantized op type reads int8 tensors
    # everything from the per-level top-k on (decoding, NMS, final top-K) stays float
    post = {o for n in graph.node if n.op_type == 'TopK' for o in n.output}
    for n in graph.node:  # topological order
        if post.intersection(n.input):
            assert n.op_type not in ('QuantizeLinear', 'DequantizeLinear'), n.name
            post.update(n.output)
    assert {'NonMaxSuppression', 'Sigmoid'} <= {n.op_type for n in graph.node if post & set(n.output)}
    meta = read_metadata(path)
    assert meta['preprocess'] == read_metadata(setup['onnx'])['preprocess']
    assert 'QDQ' in meta['quantization']

    fp32, int8 = OrtSession(setup['onnx']), OrtSession(path)
    x = inputs[0]
    (ref_dets, ref_labels), (dets, labels) = fp32.run({'input': x}), int8.run({'input': x})
    keep = labels[0] >= 0
    assert keep.sum() > 5
    assert ((dets[0, keep, 2:4] >= dets[0, keep, :2]) & (dets[0, keep, 2:4] <= SCALE)).all()
    pair = match_detections(
        dict(bboxes=ref_dets[0, ref_labels[0] >= 0, :4], scores=ref_dets[0, ref_labels[0] >= 0, 4],
             labels=ref_labels[0, ref_labels[0] >= 0]),
        dict(bboxes=dets[0, keep, :4], scores=dets[0, keep, 4], labels=labels[0, keep]), **FOUND_AGAIN)
    assert pair['matched'] >= pair['ref'] // 3  # INT8 keeps a good part of the float detections


def test_export_tool_bad_input(setup, tmp_path):
    tool = load_tool('deployment/export_onnx.py')
    with pytest.raises(ConfigError, match='supports RetinaNet.*FasterRCNN'):
        tool.main(['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '--end2end',
                   '--out', str(tmp_path / 'x.onnx')])
    from mmdet_efficientvit.errors import SetupError
    with pytest.raises(SetupError, match='already exists.*--overwrite'):
        tool.main([setup['cfg'], '--end2end', '--out', setup['onnx']])
    with pytest.raises(SystemExit):
        tool.parse_args([setup['cfg'], '--quantize', 'int8'])


@pytest.mark.slow
def test_benchmark_end2end_group(tmp_path):
    """``benchmark.py --groups end2end``: eager predict, fp32 and INT8 end-to-end rows per model,
    fp32 against R50's eager predict (absent here: NaN), INT8 against the same model's fp32."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    cases = benchmark.main([
        '--groups', 'end2end', '--e2e-detectors', 'evit-m0', '--det-size', '96x128',
        '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01', '--threads', '1',
        '--no-memory', '--out', str(tmp_path / 'e2e.csv')])
    assert [c.variant for c in cases] == ['eager predict (deployed, NMS)',
                                          'onnxruntime end2end fp32', 'onnxruntime end2end INT8']
    assert all(c.latency_ms > 0 and c.size == (96, 128) for c in cases)
    assert cases[2].reference == cases[1].key
    assert 'RetinaNet-R50' in cases[0].reference and 'RetinaNet-R50' in cases[1].reference


@pytest.mark.slow
def test_benchmark_realtime_group(tmp_path):
    """``benchmark.py --groups realtime`` with config files (as docs/realtime.md times the demo
    ablations): every row against the reference detector's row of the same variant, which is added
    when not listed; an unknown detector is refused by argparse in one line."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    ours, tiny = ('configs/demo/ablations/rtmdet_evit_fpn_demo_shapes.py',
                  'configs/demo/rtmdet_tiny_demo_shapes.py')
    cases = benchmark.main([
        '--groups', 'realtime', '--realtime-detectors', ours, '--realtime-reference', tiny,
        '--realtime-size', '96x128', '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01',
        '--threads', '1', '--no-memory', '--out', str(tmp_path / 'realtime.csv')])
    assert [c.model for c in cases] == (['rtmdet_evit_fpn_demo_shapes'] * 3
                                        + ['rtmdet_tiny_demo_shapes'] * 3)
    by_key = {c.key: c for c in cases}
    for case in cases:
        assert case.latency_ms > 0 and case.size == (96, 128)
        reference = by_key[case.reference]
        assert reference.model == 'rtmdet_tiny_demo_shapes' and reference.variant == case.variant
    assert cases[0].flops < cases[3].flops  # the EfficientViT detector is the lighter one
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--groups', 'realtime', '--realtime-detectors', 'rtmdet-evit-m9'])
