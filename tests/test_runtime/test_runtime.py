"""The runtime (``mmdet_efficientvit_runtime``, run by ``onnx_inference.py``) on the end-to-end
RetinaNet graph: mmdet's pipeline and detections on images, pycocotools mAP equal to mmdet's
CocoMetric, node-time profile, running without PyTorch (the module copied alone, and the tool in the
checkout), and one line for each bad input."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import mmdet_efficientvit_runtime
from _data import REPO, RUNTIME, error_line, mmdet_predictions, tool_env

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES  # noqa: E402
from mmdet_efficientvit.deployment.pairing import match_detections  # noqa: E402

from _deploy import BLOCKER, RETINANET_NUM_VAL as NUM_VAL  # noqa: E402


@pytest.fixture(scope='module')
def inference():
    return mmdet_efficientvit_runtime


def test_onnx_inference_matches_mmdet_pipeline_and_coco_metric(retinanet_e2e, inference, tmp_path, capsys):
    """On images (not tensors) the tool gives mmdet's detections in original pixels, and its
    pycocotools mAP equals mmdet's CocoMetric on the same predictions.

    The ground truth is mmdet's own top detections, so a tool that read, resized, normalised or
    rescaled differently from mmdet would score far below 1.
    """
    from mmdet.evaluation import CocoMetric
    val = retinanet_e2e['data']
    ann = json.load(open(val['val_ann']))
    paths = [os.path.join(val['val_img_dir'], im['file_name']) for im in ann['images']]
    reference = mmdet_predictions(retinanet_e2e['cfg'], retinanet_e2e['ckpt'], paths)
    session, meta = inference.load_model(retinanet_e2e['onnx'])
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
    stats = inference.main([retinanet_e2e['onnx'], val['val_img_dir'], '--eval', str(gt_file),
                            '--out-dir', str(out), '--threads', '1', '--profile'])['bbox']
    printed = capsys.readouterr().out
    assert stats[0] > 0.95
    assert len(list(out.glob('*.png'))) == NUM_VAL
    # evaluate(), the same scoring for callers (the front's INT8 mAP), without files or tables
    assert (inference.evaluate(session, meta, str(gt_file), val['val_img_dir'])['bbox'] == stats).all()
    assert capsys.readouterr().out == ''
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


@pytest.mark.slow
@pytest.mark.parametrize('script', ['copied runtime', 'tool in the checkout'])
def test_onnx_inference_without_torch(retinanet_e2e, tmp_path, script):
    """With torch, mmcv, mmengine, mmdet and our package unimportable, the runtime module copied
    alone to another folder (a machine without them) runs, and so does ``onnx_inference.py`` in the
    checkout, which imports the module (found at the repository root, nothing installed): both skip
    an unreadable image and name it."""
    images = tmp_path / 'images'
    images.mkdir()
    for name in sorted(os.listdir(retinanet_e2e['data']['val_img_dir']))[:2]:
        (images / name).write_bytes(open(os.path.join(retinanet_e2e['data']['val_img_dir'], name), 'rb').read())
    (images / 'broken.jpg').write_bytes(b'not a jpeg')
    if script == 'copied runtime':
        path = tmp_path / RUNTIME.name  # run from outside the repository
        path.write_text(RUNTIME.read_text())
    else:
        path = REPO / 'tools' / 'deployment' / 'onnx_inference.py'
    proc = subprocess.run(
        [sys.executable, '-c', BLOCKER, str(path), retinanet_e2e['onnx'], str(images),
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


def test_onnx_inference_bad_input(retinanet_e2e, inference, tmp_path, capsys):
    val = retinanet_e2e['data']
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
                     [retinanet_e2e['onnx'], val['val_img_dir'], '--eval', str(other), '--out-dir', out])
    assert '1 of the 1 images' in err and 'elsewhere.jpg' in err and 'image folder' in err
    other.write_text(json.dumps(dict(ann, categories=[dict(id=1, name='cat')])))
    err = error_line(capsys, inference.main,
                     [retinanet_e2e['onnx'], val['val_img_dir'], '--eval', str(other), '--out-dir', out])
    assert 'has no categories' in err
    assert not os.path.exists(out)  # nothing written before the checks

    # results already there are not overwritten
    os.makedirs(out)
    first = os.path.join(out, sorted(os.listdir(val['val_img_dir']))[0].replace('.jpg', '.png'))
    open(first, 'w').write('mine')
    err = error_line(capsys, inference.main, [retinanet_e2e['onnx'], val['val_img_dir'], '--out-dir', out])
    assert 'already exists' in err and '--overwrite' in err
    assert open(first).read() == 'mine'
