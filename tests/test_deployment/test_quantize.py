"""INT8 (``export_onnx.py --end2end --quantize int8``, ``deployment/quantize.py``): static QDQ
calibrated on images read as the runtime reads them; the network's convolutions and matmuls quantized,
the post-processing float, the float model kept, and the INT8 graph still finds the float detections."""
import pytest
import torch

from _data import load_tool

pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.deployment.metadata import read_metadata  # noqa: E402
from mmdet_efficientvit.deployment.pairing import FOUND_AGAIN, match_detections  # noqa: E402
from mmdet_efficientvit_runtime import OrtSession  # noqa: E402

from _deploy import RETINANET_SCALE as SCALE  # noqa: E402


def test_int8_produces_boxes(retinanet_e2e, capsys):
    """``--quantize int8`` (QDQ, per-channel) calibrated on images read as onnx_inference.py reads
    them: the network's Conv/MatMul get quantized, the post-processing stays float, the float model
    is kept, and the INT8 model still detects."""
    import onnx

    from mmdet_efficientvit.deployment.image_inputs import image_inputs
    from mmdet_efficientvit.deployment.quantize import QUANTIZED_OPS
    tool = load_tool('deployment/export_onnx.py')
    args = tool.parse_args([retinanet_e2e['cfg'], '--end2end', '--quantize', 'int8', '--calib-dir',
                            retinanet_e2e['data']['train_img_dir'], '--calib-num', '2'])
    before = open(retinanet_e2e['onnx'], 'rb').read()
    path = tool.quantize(args, retinanet_e2e['onnx'], [torch.randn(1, 3, 128, 192)])
    assert path == retinanet_e2e['onnx'][:-len('.onnx')] + '.int8.onnx'
    assert open(retinanet_e2e['onnx'], 'rb').read() == before
    text = capsys.readouterr().out
    assert 'calibrated on 2 images' in text and 'INT8 vs float at (1, 3, 128, 192)' in text
    inputs = image_inputs(retinanet_e2e['onnx'], retinanet_e2e['data']['val_img_dir'], 1, '--check-images')
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
    assert meta['preprocess'] == read_metadata(retinanet_e2e['onnx'])['preprocess']
    assert 'QDQ' in meta['quantization']

    fp32, int8 = OrtSession(retinanet_e2e['onnx']), OrtSession(path)
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
