"""The runtime (``mmdet_efficientvit_runtime``, run by ``onnx_inference.py``) with a masks model (Mask R-CNN's end-to-end convention): mask pasting in
numpy, drawing, bbox and segm ``--eval``, and the one-line refusals.

References are mmdet's own, run with PyTorch here only: ``FCNMaskHead._predict_by_feat_single`` and
``_do_paste_mask`` (the pasting ``tools/test.py`` does on a CPU) and ``CocoMetric`` (RLE records and
mAP). The model is a hand-built ONNX graph that outputs fixed ``dets``/``labels``/``masks`` for any
image batch, with the metadata the exporter writes for the Mask R-CNN demo config, so the runtime is
tested on its own.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import mmdet_efficientvit_runtime
from _data import CONFIGS, RUNTIME, error_line, tool_env

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import (DEMO_SHAPES_CLASSES,  # noqa: E402
                                                     generate_demo_shapes)
from mmdet_efficientvit.deployment.metadata import deploy_metadata, write_metadata  # noqa: E402
from mmdet_efficientvit.resources import load_config  # noqa: E402

CONFIG = str(CONFIGS / 'demo' / 'mask_rcnn_evit_demo_shapes.py')
MASK_SIZE = 28
IMG_SIZE = (97, 61)  # odd, resized by the config's test pipeline (256, keep ratio) to 256x161
NUM_VAL = 3


@pytest.fixture(scope='module')
def tool():
    return mmdet_efficientvit_runtime


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def smooth_logits(rng: np.random.Generator, n: int, channels: int = 1) -> np.ndarray:
    """(n, channels, 28, 28) mask logits with blobs (upsampled noise), so the 0.5 contour is long."""
    coarse = rng.normal(0, 4, (n * channels, 7, 7)).astype(np.float32)
    fine = np.stack([cv2.resize(c, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_CUBIC)
                     for c in coarse])
    return fine.reshape(n, channels, MASK_SIZE, MASK_SIZE)


# ------------------------------------------------------------------------------ pasting
@pytest.mark.parametrize('img_h, img_w', [(61, 97), (128, 127), (33, 250)])
def test_paste_masks_equals_mmdet_do_paste_mask(tool, img_h, img_w):
    """Boxes of every size, partly outside the image, degenerate (zero width or height): each
    binary mask equals mmdet's ``_do_paste_mask`` (per box, ``skip_empty``) thresholded at 0.5."""
    from mmdet.models.roi_heads.mask_heads.fcn_mask_head import _do_paste_mask
    rng = np.random.default_rng(img_h * img_w)
    n = 40
    centre = rng.uniform(-0.2, 1.2, (n, 2)) * [img_w, img_h]
    size = np.exp(rng.uniform(np.log(0.5), np.log(1.6 * max(img_h, img_w)), (n, 2)))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1).astype(np.float32)
    # every box overlaps the image's pixel range (mmdet's arange needs it; clipped boxes always do)
    boxes[:, :2] = np.minimum(boxes[:, :2], [img_w - 2, img_h - 2])
    boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
    boxes[:3] = [[5, 5, 5, 20], [4.5, 3, 30, 3], [0, 0, img_w, img_h]]  # zero width, zero height, all
    assert ((boxes[:, :2] < 0) | (boxes[:, 2:] > [img_w, img_h])).any(1).sum() > 10
    probs = torch.from_numpy(smooth_logits(rng, n)[:, 0]).sigmoid()
    probs[3] = 1.0  # saturated: the mask fills its box
    got = tool.paste_masks(probs.numpy(), boxes, img_h, img_w, 0.5)
    assert got.shape == (n, img_h, img_w) and got.dtype == bool
    for i in range(n):
        ref = torch.zeros(img_h, img_w, dtype=torch.bool)
        chunk, where = _do_paste_mask(probs[i:i + 1, None], torch.from_numpy(boxes[i:i + 1]),
                                      img_h, img_w, skip_empty=True)
        ref[where] = chunk[0] >= 0.5
        assert iou(got[i], ref.numpy()) > 0.999, (i, boxes[i])
    # a saturated map covers exactly the pixels whose centres are inside its box
    x0, y0, x1, y1 = boxes[3]
    ys, xs = np.mgrid[:img_h, :img_w] + 0.5
    np.testing.assert_array_equal(got[3], (xs > x0) & (xs < x1) & (ys > y0) & (ys < y1))


def test_to_image_equals_fcn_mask_head(tool):
    """Detections in network pixels -> original image, as ``predict(rescale=True)``: boxes divided
    by the scale factors exactly as ``FCNMaskHead`` does, masks as its CPU path pastes them."""
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmengine.config import ConfigDict
    rng = np.random.default_rng(0)
    ori_h, ori_w = 61, 97
    img_h, img_w = 104, 165  # a keep-ratio Resize of 61x97
    scale = (img_w / ori_w, img_h / ori_h)
    n, k, classes = 12, 15, 4
    x1y1 = rng.uniform(0, [img_w - 4, img_h - 4], (n, 2))
    x2y2 = x1y1 + rng.uniform(2, [img_w, img_h], (n, 2))
    boxes = np.concatenate([x1y1, np.minimum(x2y2, [img_w, img_h])], 1).astype(np.float32)
    dets = np.zeros((k, 5), np.float32)  # padding rows: score 0, label -1
    dets[:n, :4], dets[:n, 4] = boxes, np.sort(rng.uniform(0.05, 1, n))[::-1]
    labels = np.full(k, -1, np.int64)
    labels[:n] = rng.integers(0, classes, n)
    logits = torch.from_numpy(smooth_logits(rng, n, classes))
    # the graph's masks output: each detection's own class, as probabilities
    probs = np.zeros((k, MASK_SIZE, MASK_SIZE), np.float32)
    probs[:n] = logits.sigmoid()[torch.arange(n), torch.from_numpy(labels[:n])].numpy()

    got = tool.to_image(dets, labels, scale, (img_h, img_w), probs, (ori_h, ori_w), 0.5)
    head = FCNMaskHead(num_convs=0, num_classes=classes)
    ref_boxes = torch.from_numpy(boxes.copy())
    ref_masks = head._predict_by_feat_single(
        logits, ref_boxes, torch.from_numpy(labels[:n]),
        dict(scale_factor=scale, ori_shape=(ori_h, ori_w)), ConfigDict(mask_thr_binary=0.5),
        rescale=True)  # divides ref_boxes in place
    np.testing.assert_array_equal(got['bboxes'], ref_boxes.numpy())
    np.testing.assert_array_equal(got['labels'], labels[:n])
    assert got['masks'].shape == (n, ori_h, ori_w)
    assert min(iou(g, r) for g, r in zip(got['masks'], ref_masks.numpy())) > 0.999
    assert all(m.sum() > 0 for m in got['masks'])


# ------------------------------------------------------------------------------ the tool
def fixed_graph(path: str, outputs: dict, metadata: dict) -> str:
    """An ONNX model that outputs ``outputs`` (name -> array with a leading 1) for every image of a
    (B, 3, H, W) ``input`` batch, with ``metadata`` as its ``metadata_props``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node('Shape', ['input'], ['shape']),
             helper.make_node('Slice', ['shape', 'zero', 'one'], ['batch'])]
    inits = [numpy_helper.from_array(np.array([0], np.int64), 'zero'),
             numpy_helper.from_array(np.array([1], np.int64), 'one')]
    graph_outputs = []
    for name, value in outputs.items():
        ones = ['one'] * (value.ndim - 1)
        nodes += [helper.make_node('Concat', ['batch'] + ones, [f'{name}_shape'], axis=0),
                  helper.make_node('Expand', [f'{name}_value', f'{name}_shape'], [name])]
        inits.append(numpy_helper.from_array(value, f'{name}_value'))
        dtype = TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT
        graph_outputs.append(helper.make_tensor_value_info(name, dtype, None))
    graph = helper.make_graph(
        nodes, 'fixed', [helper.make_tensor_value_info('input', TensorProto.FLOAT,
                                                       ['batch', 3, 'height', 'width'])],
        graph_outputs, initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)]), path)
    write_metadata(path, metadata)
    return path


@pytest.fixture(scope='module')
def masks_model(tmp_path_factory):
    """DemoShapes val images and a graph whose detections, for every image, are image 1's objects
    (boxes slightly off, masks from the polygons, blurred) plus a few false ones."""
    root = tmp_path_factory.mktemp('masks')
    data = generate_demo_shapes(str(root / 'shapes'), num_train=1, num_val=NUM_VAL,
                                img_size=IMG_SIZE, seed=5)
    cfg = load_config(CONFIG)
    metadata = deploy_metadata(cfg, CONFIG, None, None, len(DEMO_SHAPES_CLASSES),
                               cfg.model.test_cfg.to_dict(), 'dets, labels, masks (test graph)')
    tool = mmdet_efficientvit_runtime
    pre = json.loads(metadata['preprocess'])
    img = tool.read_image(os.path.join(data['val_img_dir'], '000000.jpg'))
    _, (w_scale, h_scale) = tool.preprocess(img, pre)
    ann = json.load(open(data['val_ann']))
    rng = np.random.default_rng(0)
    dets, labels, masks = [], [], []
    for obj in [a for a in ann['annotations'] if a['image_id'] == 1]:
        x, y, w, h = obj['bbox']
        box = np.array([x, y, x + w, y + h]) + rng.uniform(-1, 1, 4)
        poly = np.array(obj['segmentation'][0]).reshape(-1, 2)
        cell = (poly - box[:2]) / (box[2:] - box[:2]) * MASK_SIZE
        mask = np.zeros((MASK_SIZE, MASK_SIZE), np.float32)
        cv2.fillPoly(mask, [np.round(cell * 16).astype(np.int32)], 1.0, shift=4)
        masks.append(cv2.GaussianBlur(mask, (5, 5), 1.0))
        dets.append([*(box * ([w_scale, h_scale] * 2)), rng.uniform(0.5, 1)])
        labels.append(obj['category_id'] - 1)
    for _ in range(4):  # false detections
        x, y = rng.uniform(0, 0.6, 2) * [256, 161]
        dets.append([x, y, x + 60, y + 50, rng.uniform(0.05, 0.6)])
        labels.append(int(rng.integers(4)))
        masks.append(cv2.GaussianBlur((rng.random((MASK_SIZE, MASK_SIZE)) > 0.4).astype(np.float32),
                                      (5, 5), 1.0))
    order = np.argsort([-d[4] for d in dets])
    k = len(dets) + 3  # and padding rows
    out = dict(dets=np.zeros((1, k, 5), np.float32), labels=np.full((1, k), -1, np.int64),
               masks=np.zeros((1, k, MASK_SIZE, MASK_SIZE), np.float32))
    out['dets'][0, :len(dets)] = np.float32(dets)[order]
    out['labels'][0, :len(dets)] = np.array(labels)[order]
    out['masks'][0, :len(dets)] = np.stack(masks)[order]
    path = fixed_graph(str(root / 'masks.onnx'), out, metadata)
    boxes_only = fixed_graph(str(root / 'boxes.onnx'), dict(dets=out['dets'], labels=out['labels']),
                             metadata)
    return dict(root=root, data=data, onnx=path, boxes_onnx=boxes_only, outputs=out,
                metadata=metadata, scale=(w_scale, h_scale))


def mmdet_coco_metric(ann_file: str, outputs: dict, scale, num_images: int):
    """mmdet's ``CocoMetric`` (bbox and segm) on the fixed detections, each image's masks pasted
    by ``FCNMaskHead`` and RLE-encoded by mmdet: its metrics and its JSON records."""
    from mmdet.evaluation import CocoMetric
    from mmdet.models.roi_heads.mask_heads import FCNMaskHead
    from mmdet.structures.mask import encode_mask_results
    from mmengine.config import ConfigDict
    keep = outputs['labels'][0] >= 0
    head = FCNMaskHead(num_convs=0, num_classes=len(DEMO_SHAPES_CLASSES), class_agnostic=True)
    preds = []
    for img_id in range(1, num_images + 1):
        boxes = torch.from_numpy(outputs['dets'][0, keep, :4].copy())
        masks = head._predict_by_feat_single(
            torch.from_numpy(outputs['masks'][0, keep, None]), boxes,
            torch.from_numpy(outputs['labels'][0, keep]),
            dict(scale_factor=scale, ori_shape=IMG_SIZE[::-1]), ConfigDict(mask_thr_binary=0.5),
            rescale=True, activate_map=True)  # the graph's masks are probabilities already
        preds.append(dict(img_id=img_id, bboxes=boxes.numpy(), scores=outputs['dets'][0, keep, 4],
                          labels=outputs['labels'][0, keep],
                          masks=encode_mask_results(masks.numpy())))
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=DEMO_SHAPES_CLASSES)
    values = metric.compute_metrics([({}, p) for p in preds])
    return values, preds


def test_eval_gives_coco_metric_bbox_and_segm(masks_model, tool, tmp_path, capsys):
    """``--eval`` on a masks model: results.segm.json holds the records CocoMetric writes (RLE of
    mmdet's pasted masks), and both mAPs equal CocoMetric's on them."""
    data = masks_model['data']
    out = tmp_path / 'out'
    stats = tool.main([masks_model['onnx'], data['val_img_dir'], '--eval', data['val_ann'],
                       '--out-dir', str(out), '--threads', '1', '--score-thr', '0.5'])
    assert sorted(stats) == ['bbox', 'segm']
    text = capsys.readouterr().out
    assert 'segm_mAP: ' in text and 'bbox_mAP: ' in text
    values, preds = mmdet_coco_metric(data['val_ann'], masks_model['outputs'],
                                      masks_model['scale'], NUM_VAL)
    assert 0.1 < values['segm_mAP'] < 0.9 and 0.1 < values['bbox_mAP'] < 0.9
    for metric in ('bbox', 'segm'):  # CocoMetric rounds to 3 decimals
        assert abs(stats[metric][0] - values[f'{metric}_mAP']) <= 0.0005 + 1e-6, metric
        assert abs(stats[metric][1] - values[f'{metric}_mAP_50']) <= 0.0005 + 1e-6, metric

    records = json.load(open(out / 'results.segm.json'))
    assert len(records) == NUM_VAL * len(preds[0]['labels'])
    from pycocotools import mask as mask_util
    for pred in preds:
        mine = [r for r in records if r['image_id'] == pred['img_id']]
        for record, rle, label in zip(mine, pred['masks'], pred['labels']):
            assert record['category_id'] == int(label) + 1
            assert isinstance(record['segmentation']['counts'], str)
            ref = mask_util.decode(rle)
            assert iou(mask_util.decode(record['segmentation']).astype(bool), ref.astype(bool)) > 0.999
    # the pictures show the masks: the best detection's pixels are tinted
    src = cv2.imread(os.path.join(data['val_img_dir'], '000000.jpg'))
    drawn = cv2.imread(str(out / '000000.png'))
    first = mask_util.decode(records[0]['segmentation']).astype(bool)
    assert drawn.shape == src.shape and np.abs(drawn[first].astype(int) - src[first]).mean() > 20


def test_draw_fills_masks_then_boxes(tool):
    """A mask is blended half and half with its class colour; its box and label go on top; a
    detection below the score threshold is not drawn."""
    img = np.full((60, 80, 3), 100, np.uint8)
    masks = np.zeros((2, 60, 80), bool)
    masks[0, 20:40, 10:50] = masks[1, :, :] = True
    result = dict(bboxes=np.float32([[5, 15, 55, 45], [0, 0, 80, 60]]), scores=np.float32([0.9, 0.2]),
                  labels=np.array([2, 1]), masks=masks)
    drawn = tool.draw(img, result, DEMO_SHAPES_CLASSES, 0.5)
    colour = np.float32(tool.color_of(2))
    np.testing.assert_array_equal(drawn[25:35, 15:45], np.uint8(100 * 0.5 + colour * 0.5)[None, None]
                                  * np.ones((10, 30, 1), np.uint8))
    np.testing.assert_array_equal(drawn[50:, 60:], img[50:, 60:])  # outside: untouched
    assert (drawn[15, 10:50] == colour.astype(np.uint8)).all()  # the box edge, over the mask


def test_eval_bbox_only_without_segmentations(masks_model, tool, tmp_path, capsys):
    """Annotations without segmentations: one line says so and bbox is evaluated alone."""
    data = masks_model['data']
    ann = json.load(open(data['val_ann']))
    for a in ann['annotations']:
        del a['segmentation']
    boxes_only = tmp_path / 'boxes.json'
    boxes_only.write_text(json.dumps(ann))
    out = tmp_path / 'out'
    stats = tool.main([masks_model['onnx'], data['val_img_dir'], '--eval', str(boxes_only),
                       '--out-dir', str(out), '--no-vis'])
    notes = [line for line in capsys.readouterr().out.splitlines() if 'segmentation' in line]
    assert len(notes) == 1 and 'evaluating bbox only' in notes[0]
    assert sorted(stats) == ['bbox'] and sorted(os.listdir(out)) == ['results.bbox.json']
    # --metric bbox on a masks model evaluates boxes only, without a note
    stats = tool.main([masks_model['onnx'], data['val_img_dir'], '--eval', data['val_ann'],
                       '--metric', 'bbox', '--out-dir', str(tmp_path / 'bbox'), '--no-vis'])
    assert sorted(stats) == ['bbox'] and 'segmentation' not in capsys.readouterr().out


def test_bad_input_is_one_line(masks_model, tool, tmp_path, capsys):
    data = masks_model['data']
    out = str(tmp_path / 'out')
    # segm asked of a boxes-only model
    err = error_line(capsys, tool.main, [masks_model['boxes_onnx'], data['val_img_dir'], '--eval',
                                         data['val_ann'], '--metric', 'segm', '--out-dir', out])
    assert 'boxes-only' in err and '--metric bbox' in err
    # segm asked where the annotations have no masks
    ann = json.load(open(data['val_ann']))
    del ann['annotations'][0]['segmentation']
    partial = tmp_path / 'partial.json'
    partial.write_text(json.dumps(ann))
    err = error_line(capsys, tool.main, [masks_model['onnx'], data['val_img_dir'], '--eval',
                                         str(partial), '--metric', 'bbox', 'segm', '--out-dir', out])
    assert '1 of the' in err and 'no segmentation' in err
    err = error_line(capsys, tool.main, [masks_model['onnx'], data['val_img_dir'], '--metric', 'segm'])
    assert '--eval' in err
    # a masks graph whose metadata has no mask threshold
    metadata = dict(masks_model['metadata'], test_cfg=json.dumps(dict(rcnn=dict(score_thr=0.05))))
    no_thr = fixed_graph(str(tmp_path / 'no_thr.onnx'), masks_model['outputs'], metadata)
    err = error_line(capsys, tool.main, [no_thr, data['val_img_dir'], '--out-dir', out])
    assert 'mask_thr_binary' in err and '--end2end' in err
    assert not os.path.exists(out)  # nothing written


def test_masks_model_without_torch(masks_model, tmp_path):
    """The copied runtime module pastes, draws and evaluates masks with torch and the OpenMMLab packages
    unimportable."""
    blocked = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdet_efficientvit')
    code = ('import runpy, sys\n'
            f'for name in {blocked!r}:\n'
            '    sys.modules[name] = None  # import raises ImportError\n'
            'sys.argv = sys.argv[1:]\n'
            "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    copy = tmp_path / RUNTIME.name  # the runtime module, copied as users copy it
    copy.write_text(RUNTIME.read_text())
    data = masks_model['data']
    proc = subprocess.run(
        [sys.executable, '-c', code, str(copy), masks_model['onnx'], data['val_img_dir'],
         '--eval', data['val_ann'], '--out-dir', str(tmp_path / 'out')],
        cwd=tmp_path, env=tool_env(PYTHONPATH=''), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'segm_mAP: ' in proc.stdout
    assert len(list((tmp_path / 'out').glob('*.png'))) == NUM_VAL
