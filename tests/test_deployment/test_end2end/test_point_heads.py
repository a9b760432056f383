"""RTMDet end to end (``export_onnx.py --end2end``, ``deployment/end2end/point_heads.py``): the graph
against mmdet's own ``predict`` for mmdet's RTMDet-tiny and our EfficientViT-M0 RTMDet (plain, and
depthwise with per-level head convs), the test ``Pad`` step in the metadata and in
``onnx_inference.py``, whose ``--eval`` must give the mAP of ``tools/test.py``, INT8, and the refusal
of unsupported detectors.

The models have random weights prepared as the exporter prepares them (randomised BatchNorm weights,
statistics measured on a random image, classification bias zeroed, regression bias set to boxes 8
strides wide), so scores spread around 0.5 and NMS has work. References are mmdet's own:
``predict`` / ``inference_detector``, its ``Pad`` transform, ``tools/test.py`` with ``CocoMetric``.
"""
import json
import os
import re

import numpy as np
import pytest
import torch

from _data import load_tool, mmdet_predictions, run_tool

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import (DEMO_SHAPES_CLASSES,  # noqa: E402
                                                     generate_demo_shapes)
from mmdet_efficientvit.deployment.end2end import (check_supported, randomize_for_check,  # noqa: E402
                                                   wrap_end2end)
from mmdet_efficientvit.deployment import metadata  # noqa: E402  (its test_preprocessing is no test)
from mmdet_efficientvit.deployment.onnx_export import check_end2end, detections  # noqa: E402
from mmdet_efficientvit.deployment.pairing import FOUND_AGAIN, match_detections  # noqa: E402
from mmdet_efficientvit.deployment.traceable import image_data_samples  # noqa: E402
from mmdet_efficientvit.errors import ConfigError  # noqa: E402
from mmdet_efficientvit.models.builders import build_detector  # noqa: E402
from mmdet_efficientvit.resources import load_config  # noqa: E402
from mmdet_efficientvit.models.utils import deploy_model  # noqa: E402
import mmdet_efficientvit_runtime  # noqa: E402
from mmdet_efficientvit_runtime import OrtSession  # noqa: E402

from _deploy import (EVIT_M0, EVIT_M0_DW, SMALL_TEST_CFG, export_end2end,  # noqa: E402
                     random_detector)

RTMDET_TINY = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
# DemoShapes images of 96x64, resized (keep ratio) to 128x85 and padded to 128x128 with 114 as
# RTMDet's test pipeline does at 640: boxes may reach into the padding, below the image
IMG_SIZE = (96, 64)
SCALE = 128
NUM_VAL = 6
MAP_LINE = re.compile(r'coco/bbox_mAP: (-?\d+\.\d+)')


def assert_eager_equals_predict(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref = model.predict(x, image_data_samples(x))
        dets, labels = wrap_end2end(model)(x)
    for i, sample in enumerate(ref):
        pred = sample.pred_instances
        n = len(pred.scores)
        assert n > 10
        torch.testing.assert_close(dets[i, :n, :4], pred.bboxes)
        torch.testing.assert_close(dets[i, :n, 4], pred.scores)
        assert torch.equal(labels[i, :n], pred.labels)
        assert (labels[i, n:] == -1).all() and (dets[i, n:] == 0).all()


@pytest.mark.parametrize('config, sizes', [
    (RTMDET_TINY, [(128, 160), (192, 256)]),  # CSPNeXtPAFPN needs multiples of 32
    (EVIT_M0, [(128, 160), (173, 229)]),  # ours runs at any size: one not a multiple of 32
    (EVIT_M0_DW, [(128, 160), (173, 229)]),  # depthwise neck and head, head convs per level
], ids=['mmdet-rtmdet-tiny', 'evit-m0', 'evit-m0-dw'])
def test_end2end_matches_predict(config, sizes, tmp_path, single_thread):
    """onnxruntime = mmdet predict at two sizes, batch 2, every detection paired (same label,
    scores within 1e-5, the same box); the eager module equals predict exactly."""
    model = deploy_model(random_detector(config, **SMALL_TEST_CFG))
    assert type(wrap_end2end(model)).__name__ == 'RTMDetEnd2End'
    path = export_end2end(model, str(tmp_path / 'rtmdet.onnx'))
    torch.manual_seed(1)
    inputs = [torch.randn(2, 3, *size) for size in sizes]
    assert_eager_equals_predict(model, inputs[0])
    records = check_end2end(path, model, inputs, score_atol=1e-5, min_match=1.0)
    assert all(r['ref'] == r['got'] == r['matched'] == 2 * 40 for r in records)
    assert all(r['max_box_diff'] < 1e-2 for r in records)
    dets, labels = OrtSession(path).run({'input': inputs[1].numpy()})
    assert dets.shape == (2, 40, 5) and labels.dtype == np.int64


class Altered:
    """An onnxruntime session whose detections ``change(dets, labels)`` alters in place: a graph
    that computes something else."""

    def __init__(self, session, change):
        self.session, self.change = session, change

    @property
    def output_names(self):
        return self.session.output_names

    def run(self, feeds):
        dets, labels = self.session.run(feeds)
        self.change(dets[..., :4], dets[..., 4], labels)
        return dets, labels


def test_check_pairs_sub_pixel_boxes_and_rejects_other_detections(tmp_path, single_thread):
    """mmdet's RTMDet-tiny with the check weights but mmdet's own regression init (zero bias, std
    0.01): most boxes are a fraction of a pixel wide, as an untrained or half-trained model emits
    them. A correct graph whose coordinates round differently (here 1e-3 px off, the order measured
    between runtimes) has them at IoU < 0.99 with predict's: the check still passes it, and still
    rejects, in one line, boxes moved by 0.05 px, scores changed by 1e-3 and labels changed."""
    torch.manual_seed(0)
    model = randomize_for_check(build_detector(RTMDET_TINY, cfg_options=SMALL_TEST_CFG))
    for conv in model.bbox_head.rtm_reg:
        torch.nn.init.zeros_(conv.bias)
    model = deploy_model(model)
    path = export_end2end(model, str(tmp_path / 'tiny.onnx'))
    x = torch.randn(2, 3, 256, 256)

    def rounded(boxes, scores, labels):
        boxes[..., :2] -= np.float32(1e-3)
        boxes[..., 2:] += np.float32(1e-3)

    record, = check_end2end(path, model, [x], session=Altered(OrtSession(path), rounded))
    assert record['ref'] == record['got'] == record['matched'] == 80
    with torch.no_grad():
        preds = model.predict(x, image_data_samples(x))
    dets, labels = Altered(OrtSession(path), rounded).run({'input': x.numpy()})
    by_iou = 0
    for pred, image_dets, image_labels in zip(preds, dets, labels):
        pred = pred.pred_instances
        assert ((pred.bboxes[:, 2] - pred.bboxes[:, 0]) < 1).float().mean() > 0.5
        ref = dict(bboxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                   labels=pred.labels.numpy())
        by_iou += match_detections(ref, detections(image_dets, image_labels),
                                   box_atol=0)['matched']
    assert by_iou < 0.99 * 80  # IoU alone would reject the graph

    def move(boxes, scores, labels):
        boxes[labels >= 0] += np.float32(0.05)

    def rescore(boxes, scores, labels):
        scores[labels >= 0] += np.float32(1e-3)

    def relabel(boxes, scores, labels):
        labels[labels >= 0] = (labels[labels >= 0] + 1) % 80

    for change in (move, rescore, relabel):
        with pytest.raises(RuntimeError) as err:
            check_end2end(path, model, [x], session=Altered(OrtSession(path), change))
        message = str(err.value)
        assert '\n' not in message
        assert re.search(r"only \d+ of 80 detections match PyTorch's predict \(same label, score "
                         r"within 0\.0001, IoU > 0\.99 or coordinates within 0\.01 px; .*\); "
                         r"first unpaired: PyTorch's label \d+ score", message), message


def test_check_skips_sizes_pytorch_cannot_run(tmp_path, capsys, single_thread):
    """The exporter on mmdet's RTMDet-tiny (random weights, its own test_cfg): at 97x131 PyTorch's
    own forward fails (CSPNeXtPAFPN), so that size is reported as not checked, the others pass."""
    tool = load_tool('deployment/export_onnx.py')
    tool.main([RTMDET_TINY, '--end2end', '--shape', '128x128', '--check-sizes', '128x128', '97x131',
               '--check-batch', '1', '--out', str(tmp_path / 'tiny.onnx')])
    text = capsys.readouterr().out
    assert re.search(r'at \(1, 3, 128, 128\): 300/300 detections match .*: OK', text), text
    assert 'at (1, 3, 97, 131): NOT CHECKED, PyTorch itself fails at this size' in text
    meta = metadata.read_metadata(str(tmp_path / 'tiny.onnx'))
    assert json.loads(meta['test_cfg'])['nms_pre'] == 30000
    assert json.loads(meta['preprocess'])['image_pad'] == dict(
        size=[640, 640], size_divisor=None, pad_to_square=False, value=[114.0, 114.0, 114.0])


def test_export_tool_evit_m0_int8(trained_like, tmp_path, capsys, single_thread):
    """The exporter on our EfficientViT-M0 RTMDet config as a user runs it without a checkpoint
    (its own test_cfg: nms_pre 30000, max_per_img 300), at a size that is not a multiple of 32
    too, with an INT8 copy calibrated on images."""
    out = tmp_path / 'm0.onnx'
    load_tool('deployment/export_onnx.py').main(
        [EVIT_M0, '--end2end', '--shape', '128x160', '--check-sizes', '128x160', '173x229',
         '--check-batch', '2', '--quantize', 'int8', '--calib-dir',
         trained_like['data']['train_img_dir'], '--calib-num', '2', '--out', str(out)])
    text = capsys.readouterr().out
    for size in ['128, 160', '173, 229']:
        assert re.search(rf'at \(2, 3, {size}\): 600/600 detections match .*: OK', text), text
    # on noise inputs, after calibration on images: reported, not a measure of INT8's accuracy
    # (test_int8_finds_float_boxes measures that on images)
    for size in ['128, 160', '173, 229']:
        assert re.search(rf"INT8 vs float at \(2, 3, {size}\): 600 detections, [1-9]\d* of the "
                         r"float model's 600 found again", text), text
    assert (tmp_path / 'm0.int8.onnx').is_file()


# ------------------------------------------------------------------ the test pipeline's Pad
@pytest.mark.parametrize('pad', [
    dict(size=(128, 96), pad_val=dict(img=(114, 114, 114))),
    dict(size_divisor=32, pad_val=7),
    dict(pad_to_square=True, size_divisor=32, pad_val=dict(img=(1, 2, 3))),
    dict(pad_to_square=True),
    dict(size=(100, 100), pad_val=dict(img=114.0)),  # mmcv gives OpenCV a float: (114, 0, 0)
], ids=['size', 'divisor', 'square+divisor', 'square', 'float-value'])
def test_pad_step_as_mmdet(pad):
    """``mmdet_efficientvit_runtime.pad_image`` with the recorded step = mmdet's ``Pad`` transform."""
    from mmengine.config import Config

    import mmdet.datasets.transforms  # noqa: F401  (registers mmdet's Pad)
    from mmdet.registry import TRANSFORMS
    tool = mmdet_efficientvit_runtime
    cfg = Config(dict(model=dict(), test_pipeline=[
        dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=True),
        dict(type='Pad', **pad), dict(type='PackDetInputs')]))
    record = metadata.test_preprocessing(cfg)['image_pad']
    rng = np.random.default_rng(0)
    for h, w in [(70, 90), (100, 33), (128, 128)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = TRANSFORMS.build(dict(type='Pad', **pad))(dict(img=img))
        got = tool.pad_image(img, record)
        assert got.shape == ref['img'].shape == (*ref['img_shape'], 3)
        np.testing.assert_array_equal(got, ref['img'])


@pytest.mark.parametrize('pipeline, message', [
    ([dict(type='Pad', size=(64, 64)), dict(type='Resize', scale=(64, 64))], 'one Pad step, after'),
    ([dict(type='Resize', scale=(64, 64)), dict(type='Pad', size=(64, 64), padding_mode='edge')],
     'constant'),
    ([dict(type='Resize', scale=(64, 64)), dict(type='RandomFlip', prob=0.5)],
     'step RandomFlip is not supported'),
], ids=['pad-before-resize', 'edge-padding', 'unknown-step'])
def test_unsupported_pipeline_refused(pipeline, message):
    from mmengine.config import Config
    cfg = Config(dict(model=dict(), test_pipeline=[dict(type='LoadImageFromFile')] + pipeline))
    with pytest.raises(ConfigError, match=message) as err:
        metadata.test_preprocessing(cfg)
    assert '\n' not in str(err.value)


# ------------------------------------------------------------------ onnx_inference.py --eval
@pytest.fixture(scope='module')
def trained_like(tmp_path_factory):
    """DemoShapes data, an RTMDet-tiny config for it (RTMDet's test pipeline at 128, with Pad), a
    checkpoint of prepared random weights, and its end-to-end graph exported by the tool.

    The BatchNorm statistics are measured on the training images (as the tool reads them) and as
    many noise images: the graph is checked on both, and a random model calibrated on one kind of
    input blows up on the other. The classification weights are scaled down (0.3: no score
    saturates at 1.0, nor do they crowd at 0.5; 0.1 to 0.4 pass for 8 seeds of the noise) since
    tied scores make the order of the selection arbitrary, in mmdet as in the graph."""
    root = tmp_path_factory.mktemp('rtmdet')
    data = generate_demo_shapes(str(root / 'shapes'), num_train=8, num_val=NUM_VAL,
                                img_size=IMG_SIZE, seed=5)
    cfg = root / 'rtmdet_tiny_shapes.py'
    cfg.write_text(f"""
_base_ = {RTMDET_TINY!r}
data_root = {str(root / 'shapes') + '/'!r}
classes = {tuple(DEMO_SHAPES_CLASSES)!r}
model = dict(bbox_head=dict(num_classes={len(DEMO_SHAPES_CLASSES)}),
             test_cfg=dict(nms_pre=300, max_per_img=40))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({SCALE}, {SCALE}), keep_ratio=True),
    dict(type='Pad', size=({SCALE}, {SCALE}), pad_val=dict(img=(114, 114, 114))),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
test_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=dict(classes=classes), ann_file='val.json',
    data_prefix=dict(img='val/'), pipeline=test_pipeline))
val_dataloader = test_dataloader
test_evaluator = dict(ann_file=data_root + 'val.json')
val_evaluator = test_evaluator
custom_hooks = []  # no EMA: the checkpoint's weights are the ones evaluated
default_hooks = dict(visualization=dict(draw=False))
""")
    inference = mmdet_efficientvit_runtime
    pre = metadata.test_preprocessing(load_config(str(cfg)))
    train = torch.from_numpy(inference.pad_batch(
        [inference.preprocess(inference.read_image(path), pre)[0]
         for path in inference.image_paths(data['train_img_dir'])], pre))
    noise = torch.randn(train.shape, generator=torch.Generator().manual_seed(0))
    train = torch.cat([train, noise])
    model = random_detector(str(cfg), train)
    with torch.no_grad():
        for conv in model.bbox_head.rtm_cls:
            conv.weight.mul_(0.3)
    ckpt = root / 'rtmdet.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    onnx_path = root / 'rtmdet_e2e.onnx'
    load_tool('deployment/export_onnx.py').main(
        [str(cfg), '--checkpoint', str(ckpt), '--end2end', '--shape', f'{SCALE}x{SCALE}',
         '--check-sizes', f'{SCALE}x{SCALE}', '--check-batch', '2', '--check-images',
         data['val_img_dir'], '--check-num', '2', '--out', str(onnx_path)])
    return dict(root=root, data=data, cfg=str(cfg), ckpt=str(ckpt), onnx=str(onnx_path))


def test_metadata_records_pad(trained_like):
    meta = metadata.read_metadata(trained_like['onnx'])
    assert json.loads(meta['preprocess']) == dict(
        scale=[SCALE, SCALE], keep_ratio=True, interpolation='bilinear',
        image_pad=dict(size=[SCALE, SCALE], size_divisor=None, pad_to_square=False,
                       value=[114.0, 114.0, 114.0]),
        mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], bgr_to_rgb=False,
        pad_size_divisor=1, pad_value=0.0)
    assert json.loads(meta['classes']) == list(DEMO_SHAPES_CLASSES)
    assert json.loads(meta['test_cfg'])['max_per_img'] == 40


def test_onnx_inference_eval_equals_tools_test(trained_like, tmp_path, single_thread):
    """On image files, ``onnx_inference.py`` gives mmdet's detections box for box (boxes reaching
    into the padding kept, as mmdet keeps them), and its ``--eval`` mAP equals ``tools/test.py``'s
    (CocoMetric) on the same weights and annotations.

    The annotations are every second of mmdet's own detections by score, so the mAP is well
    inside (0, 1) and a tool that read, resized, padded, normalised or rescaled differently, or
    ranked its detections otherwise, would score differently from mmdet.
    """
    val = trained_like['data']
    ann = json.load(open(val['val_ann']))
    paths = [os.path.join(val['val_img_dir'], im['file_name']) for im in ann['images']]
    reference = mmdet_predictions(trained_like['cfg'], trained_like['ckpt'], paths)
    inference = mmdet_efficientvit_runtime
    session, meta = inference.load_model(trained_like['onnx'])
    ours = [r for _, _, r, _ in inference.detect(session, meta, paths, batch_size=2)]
    for ref, got in zip(reference, ours, strict=True):
        pair = match_detections(ref, got)
        assert pair['ref'] == pair['got'] == pair['matched'] == 40
        assert pair['max_score_diff'] < 1e-4 and pair['max_box_diff'] < 1e-2
    height = IMG_SIZE[1]
    assert any((r['bboxes'][:, 3] > height + 1).any() for r in reference)  # into the padding

    gt = []
    for im, ref in zip(ann['images'], reference):
        order = np.argsort(-ref['scores'], kind='stable')[::2]
        for (x1, y1, x2, y2), label in zip(ref['bboxes'][order], ref['labels'][order]):
            gt.append(dict(id=len(gt) + 1, image_id=im['id'], category_id=int(label) + 1,
                           bbox=[float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                           area=float((x2 - x1) * (y2 - y1)), iscrowd=0))
    gt_file = tmp_path / 'gt.json'
    gt_file.write_text(json.dumps(dict(ann, annotations=gt)))

    out = run_tool(['test.py', trained_like['cfg'], trained_like['ckpt'], '--work-dir',
                    tmp_path / 'work', '--cfg-options', f'test_evaluator.ann_file={gt_file}',
                    f'test_dataloader.dataset.ann_file={gt_file}'], OMP_NUM_THREADS='1')
    assert out.returncode == 0, out.stderr[-3000:]
    mmdet_map = float(MAP_LINE.search(out.stdout + out.stderr).group(1))
    stats = inference.main([trained_like['onnx'], val['val_img_dir'], '--eval', str(gt_file),
                            '--out-dir', str(tmp_path / 'onnx'), '--threads', '1', '--no-vis'])['bbox']
    assert 0.2 < mmdet_map < 0.95
    assert abs(stats[0] - mmdet_map) <= 0.0005 + 1e-6  # CocoMetric rounds to 3 decimals


def test_int8_finds_float_boxes(trained_like, capsys):
    """``--quantize int8`` of an RTMDet graph, calibrated on training images: on the val images
    the INT8 model finds most of the float model's detections again (same label, IoU > 0.5)."""
    from mmdet_efficientvit.deployment.image_inputs import image_inputs
    tool = load_tool('deployment/export_onnx.py')
    data = trained_like['data']
    args = tool.parse_args([trained_like['cfg'], '--end2end', '--quantize', 'int8', '--calib-dir',
                            data['train_img_dir'], '--calib-num', '4'])
    int8_path = tool.quantize(args, trained_like['onnx'], [torch.randn(1, 3, SCALE, SCALE)])
    assert 'INT8 vs float at (1, 3, 128, 128)' in capsys.readouterr().out
    fp32, int8 = OrtSession(trained_like['onnx']), OrtSession(int8_path)
    ref = got = matched = 0
    for x in image_inputs(trained_like['onnx'], data['val_img_dir'], NUM_VAL, '--check-images'):
        (ref_dets, ref_labels), (dets, labels) = fp32.run({'input': x}), int8.run({'input': x})
        pair = match_detections(detections(ref_dets[0], ref_labels[0]),
                                detections(dets[0], labels[0]), **FOUND_AGAIN)
        ref, got, matched = ref + pair['ref'], got + pair['got'], matched + pair['matched']
    assert ref == got == NUM_VAL * 40
    assert matched >= 0.5 * ref, (matched, ref)


def test_unsupported_detectors_refused():
    """One line naming every supported detector and what this model has: FCOS (another point
    head family) and an RTMDet with the objectness branch."""
    fcos = build_detector('mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py')
    with pytest.raises(ConfigError) as err:
        check_supported(fcos)
    message = str(err.value)
    assert '\n' not in message and message.endswith('this model has detector FCOS')
    assert 'supports RetinaNet (' in message and '; RTMDet (' in message
    objectness = build_detector(RTMDET_TINY, cfg_options=dict(
        model=dict(bbox_head=dict(with_objectness=True))))
    with pytest.raises(ConfigError, match='this model has bbox_head with_objectness=True$'):
        wrap_end2end(objectness)
