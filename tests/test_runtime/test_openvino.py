"""OpenVINO as the second runtime of ``onnx_inference.py`` (``--runtime openvino``): in f32 it gives
onnxruntime's detections on the end-to-end graphs (RetinaNet and RTMDet, two sizes, batch 2), the
same pictures and ``--eval``; bf16 runs only where the CPU has it; misused options get one line.

onnxruntime is the reference: the same graphs under it are checked against mmdet's ``predict`` in
``test_deployment/test_end2end/``. The tests that run OpenVINO are skipped, with the
reason, where it is not installed; the refusal of ``--runtime openvino`` without it always runs.
OpenVINO compiles a graph (these have ~3400 nodes) for seconds to tens of seconds on two shared cores,
so the tests that compile more than the one shared RetinaNet session are marked slow.
"""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import mmdet_efficientvit_runtime
from _data import RUNTIME, error_line, load_tool, tool_env

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.deployment.onnx_export import detections  # noqa: E402
from mmdet_efficientvit.deployment.pairing import FOUND_AGAIN, match_detections  # noqa: E402
from mmdet_efficientvit.models.utils import deploy_model  # noqa: E402
from _deploy import (BLOCKER, EVIT_M0, RETINANET_NUM_VAL as NUM_VAL, SMALL_TEST_CFG,  # noqa: E402
                     export_end2end, random_detector)

try:
    import openvino
    MISSING = None
except ImportError as err:
    openvino = None
    MISSING = f'OpenVINO is not installed ({err}): pip install openvino (make setup installs it)'
needs_openvino = pytest.mark.skipif(openvino is None, reason=MISSING or '')

SIZES = [(2, 3, 128, 192), (2, 3, 173, 229)]  # the second: not a multiple of the pad divisor


@pytest.fixture(scope='module')
def inference():
    return mmdet_efficientvit_runtime


@pytest.fixture(scope='module')
def openvino_model(retinanet_e2e, inference):
    """The RetinaNet graph under OpenVINO f32, one thread: compiling it takes seconds, so once."""
    if openvino is None:
        pytest.skip(MISSING)
    return inference.load_model(retinanet_e2e['onnx'], threads=1, runtime='openvino')


def assert_same_detections(reference, session, shapes, seed: int = 0) -> None:
    """Every detection of ``reference`` paired in ``session`` (same label, scores within 1e-5, the
    same box) and none more, every coordinate within 1e-2 px, on random inputs of ``shapes``."""
    rng = np.random.default_rng(seed)
    for shape in shapes:
        x = rng.standard_normal(shape, dtype=np.float32)
        (ref_dets, ref_labels), (dets, labels) = reference.run({'input': x}), session.run({'input': x})
        assert dets.shape == ref_dets.shape and labels.dtype == ref_labels.dtype == np.int64
        for i in range(shape[0]):
            pair = match_detections(detections(ref_dets[i], ref_labels[i]),
                                    detections(dets[i], labels[i]), score_atol=1e-5)
            assert pair['ref'] == pair['got'] == pair['matched'] > 10, (shape, pair)
            assert pair['max_box_diff'] < 1e-2, (shape, pair)


def compiled_precision(session) -> str:
    """The inference precision OpenVINO compiled the model for: 'f32', 'bf16'."""
    return session.request.get_compiled_model().get_property('INFERENCE_PRECISION_HINT').to_string()


def test_f32_matches_onnxruntime(retinanet_e2e, inference, openvino_model):
    """RetinaNet: the same metadata and detections as onnxruntime, on tensors and on images through
    the tool's pipeline; the precision is set to f32 explicitly and --threads reaches OpenVINO."""
    reference, ref_meta = inference.load_model(retinanet_e2e['onnx'], threads=1)
    session, meta = openvino_model
    assert session.output_names == ['dets', 'labels']
    assert session.metadata == reference.metadata and meta == ref_meta
    assert compiled_precision(session) == 'f32'
    assert session.request.get_compiled_model().get_property('INFERENCE_NUM_THREADS') == 1
    assert_same_detections(reference, session, SIZES)

    val = retinanet_e2e['data']['val_img_dir']
    paths = inference.image_paths(val)
    ours = [r for _, _, r, _ in inference.detect(session, meta, paths, batch_size=2)]
    for ref, got in zip(inference.detect(reference, ref_meta, paths, batch_size=2), ours):
        pair = match_detections(ref[2], got, score_atol=1e-5)
        assert pair['ref'] == pair['got'] == pair['matched'] > 5, pair


@pytest.mark.slow
@needs_openvino
def test_rtmdet_f32_matches_onnxruntime(inference, tmp_path, single_thread):
    """Our RTMDet-EfficientViT-M0 graph (point head, in-graph pad handling): onnxruntime's
    detections at two sizes, batch 2."""
    path = export_end2end(deploy_model(random_detector(EVIT_M0, **SMALL_TEST_CFG)),
                          str(tmp_path / 'rtmdet.onnx'))
    reference = inference.OrtSession(path, threads=1)
    session = inference.OpenVINOSession(path, threads=1)
    assert session.output_names == reference.output_names == ['dets', 'labels']
    assert_same_detections(reference, session, [(2, 3, 128, 160), (2, 3, 173, 229)])


@pytest.mark.slow
@needs_openvino
def test_eval_and_pictures_match_onnxruntime(retinanet_e2e, inference, tmp_path, capsys):
    """``--eval`` and the pictures with ``--runtime openvino`` equal onnxruntime's. Ground truth:
    onnxruntime's detections scoring >= 0.5, so both runtimes score near 1 and any difference in
    boxes, scores or labels would show."""
    data = retinanet_e2e['data']
    ann = json.load(open(data['val_ann']))
    session, meta = inference.load_model(retinanet_e2e['onnx'], threads=1)
    _, cat_ids = inference.read_annotations(data['val_ann'], data['val_img_dir'], meta['classes'])
    paths = [f"{data['val_img_dir']}/{im['file_name']}" for im in ann['images']]
    gt = []
    for im, (_, _, result, _) in zip(ann['images'], inference.detect(session, meta, paths)):
        for (x1, y1, x2, y2), score, label in zip(result['bboxes'].tolist(),
                                                  result['scores'].tolist(), result['labels']):
            if score >= 0.5:
                gt.append(dict(id=len(gt) + 1, image_id=im['id'], category_id=cat_ids[label],
                               bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1),
                               iscrowd=0))
    assert len(gt) > 2 * NUM_VAL
    gt_file = tmp_path / 'gt.json'
    gt_file.write_text(json.dumps(dict(ann, annotations=gt)))

    runs = {}
    for runtime in ('onnxruntime', 'openvino'):
        out = tmp_path / runtime
        stats = inference.main([retinanet_e2e['onnx'], data['val_img_dir'], '--eval', str(gt_file),
                                '--out-dir', str(out), '--threads', '1', '--runtime', runtime])
        runs[runtime] = (stats['bbox'], out)
    assert 'ms per image in OpenVINO (CPU, f32)' in capsys.readouterr().out
    (ref_stats, ref_out), (stats, out) = runs['onnxruntime'], runs['openvino']
    assert ref_stats[0] > 0.95
    np.testing.assert_allclose(stats, ref_stats, atol=1e-4)
    ref_records = json.load(open(ref_out / 'results.bbox.json'))
    records = json.load(open(out / 'results.bbox.json'))
    assert [(r['image_id'], r['category_id']) for r in records] == \
        [(r['image_id'], r['category_id']) for r in ref_records]
    np.testing.assert_allclose([r['score'] for r in records], [r['score'] for r in ref_records],
                               atol=1e-5)
    names = sorted(p.name for p in ref_out.glob('*.png'))
    assert len(names) == NUM_VAL and names == sorted(p.name for p in out.glob('*.png'))
    for name in names:  # boxes are drawn at whole pixels: a sub-pixel difference may move one
        a, b = cv2.imread(str(ref_out / name)), cv2.imread(str(out / name))
        assert (a != b).any(-1).mean() < 0.01, name


def without_bf16(monkeypatch) -> None:
    """Make OpenVINO report no BF16 capability, as on a CPU without it (as on AVX2-only CPUs)."""
    real = openvino.Core.get_property

    def get_property(self, *args):
        value = real(self, *args)
        return [c for c in value if c != 'BF16'] if args[-1] == 'OPTIMIZATION_CAPABILITIES' else value

    monkeypatch.setattr(openvino.Core, 'get_property', get_property)


@needs_openvino
def test_bf16_refused_where_the_cpu_has_none(retinanet_e2e, inference, tmp_path, capsys, monkeypatch):
    """OpenVINO would run bf16 as f32 without a word on such a CPU: the tool says so in one line
    (on this machine's CPU, or one made to look like it), and writes nothing."""
    if 'BF16' in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        without_bf16(monkeypatch)
    out = tmp_path / 'out'
    err = error_line(capsys, inference.main, [retinanet_e2e['onnx'], retinanet_e2e['data']['val_img_dir'],
                                              '--runtime', 'openvino', '--precision', 'bf16',
                                              '--out-dir', str(out)])
    assert 'has no bf16' in err and 'OPTIMIZATION_CAPABILITIES' in err and '--precision f32' in err
    assert not out.exists()


@pytest.mark.slow
@needs_openvino
def test_bf16_where_the_cpu_has_it(inference, request):
    """bf16 compiles as bf16 and keeps f32's detections: most are found again (same label,
    IoU > 0.5) with scores close (bf16 keeps 8 mantissa bits)."""
    if 'BF16' not in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        pytest.skip('this CPU has no bf16 for OpenVINO (its OPTIMIZATION_CAPABILITIES lack BF16)')
    f32, _ = request.getfixturevalue('openvino_model')  # after the skip: no export for nothing
    bf16 = inference.OpenVINOSession(request.getfixturevalue('retinanet_e2e')['onnx'], threads=1,
                                     precision='bf16')
    assert compiled_precision(bf16) == 'bf16'
    x = np.random.default_rng(0).standard_normal(SIZES[0], dtype=np.float32)
    (ref_dets, ref_labels), (dets, labels) = f32.run({'input': x}), bf16.run({'input': x})
    for i in range(len(x)):
        pair = match_detections(detections(ref_dets[i], ref_labels[i]),
                                detections(dets[i], labels[i]), **FOUND_AGAIN)
        assert pair['matched'] >= 0.5 * pair['ref'] > 5 and pair['max_score_diff'] < 0.05, pair


def test_runtime_option_refusals(retinanet_e2e, inference, tmp_path, capsys, monkeypatch):
    """One line each, nothing written: OpenVINO not installed (as on a machine without it),
    --precision without OpenVINO, onnxruntime's --profile / --provider with OpenVINO."""
    model, images, out = retinanet_e2e['onnx'], retinanet_e2e['data']['val_img_dir'], tmp_path / 'out'
    base = [model, images, '--out-dir', str(out)]
    err = error_line(capsys, inference.main, base + ['--precision', 'f32'])
    assert "OpenVINO's inference precision" in err and '--runtime openvino' in err
    for extra in (['--profile'], ['--provider', 'CUDAExecutionProvider']):
        err = error_line(capsys, inference.main, base + ['--runtime', 'openvino'] + extra)
        assert f"{extra[0]} is onnxruntime's" in err and '--runtime onnxruntime' in err
    monkeypatch.setitem(sys.modules, 'openvino', None)  # import openvino now fails
    err = error_line(capsys, inference.main, base + ['--runtime', 'openvino'])
    assert 'OpenVINO, which is not installed' in err and 'pip install openvino' in err
    assert not out.exists()


@pytest.mark.slow
@needs_openvino
def test_openvino_alone(retinanet_e2e, tmp_path):
    """A copy of the runtime module runs on OpenVINO with torch, mmcv, mmengine, mmdet, our package and
    onnxruntime all unimportable (a machine with only OpenVINO, numpy and OpenCV)."""
    blocker = BLOCKER.replace("'mmdet_efficientvit')", "'mmdet_efficientvit', 'onnxruntime')")
    assert blocker != BLOCKER
    copy = tmp_path / RUNTIME.name  # the runtime module, copied as users copy it
    copy.write_text(RUNTIME.read_text())
    proc = subprocess.run(
        [sys.executable, '-c', blocker, str(copy), retinanet_e2e['onnx'],
         retinanet_e2e['data']['val_img_dir'], '--runtime', 'openvino', '--out-dir', str(tmp_path / 'out')],
        cwd=tmp_path, env=tool_env(PYTHONPATH=''), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'IMPORT ATTEMPTS [] []' in proc.stdout
    assert f'{NUM_VAL} images' in proc.stdout and 'OpenVINO (CPU, f32)' in proc.stdout
    assert len(list((tmp_path / 'out').glob('*.png'))) == NUM_VAL


@needs_openvino
def test_unreadable_model_refused(inference, tmp_path, capsys):
    bad = tmp_path / 'bad.onnx'
    bad.write_bytes(b'\x08garbage')
    err = error_line(capsys, inference.main, [str(bad), str(tmp_path), '--runtime', 'openvino'])
    assert 'not a model OpenVINO can load' in err and 'export_onnx.py --end2end' in err


@pytest.mark.slow
@needs_openvino
def test_benchmark_openvino_rows(tmp_path):
    """``benchmark.py --groups end2end`` with ``--openvino-detectors``: OpenVINO f32 (and bf16 where
    the CPU has it, else a note in the report) next to onnxruntime's rows, each against the same
    model's onnxruntime fp32 graph; a real-time key at --realtime-size, in its own comparison
    (``test_analysis/test_benchmark.py`` times a RetinaNet at --det-size)."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    out = tmp_path / 'e2e.csv'
    cases = benchmark.main([
        '--groups', 'end2end', '--e2e-detectors', 'rtmdet-evit-m0', '--openvino-detectors',
        'rtmdet-evit-m0', '--det-size', '96x128', '--realtime-size', '64x64', '--repeats', '1',
        '--warmup', '1', '--min-run-time', '0.01', '--threads', '1', '--no-memory',
        '--out', str(out)])
    has_bf16 = 'BF16' in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    openvino_variants = ['OpenVINO end2end f32'] + (['OpenVINO end2end bf16'] if has_bf16 else [])
    onnxruntime_variants = ['eager predict (deployed, NMS)', 'onnxruntime end2end fp32',
                            'onnxruntime end2end INT8']
    assert [(c.group, c.model, c.variant, c.size) for c in cases] == [
        ('end2end@realtime', 'RTMDet-EfficientViT-M0', v, (64, 64))
        for v in onnxruntime_variants + openvino_variants]
    fp32 = cases[1]
    assert all(c.reference == fp32.key and c.latency_ms > 0 for c in cases[2:])
    report = out.with_suffix('.md').read_text()
    assert ('no OpenVINO bf16 rows: this CPU' in report) != has_bf16
