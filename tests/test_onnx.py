"""Deploy (BN folding) parity and ONNX export parity of the backbone and the detector.

The exported graphs must match PyTorch within 1e-4 at two input sizes whose attention windows need
different padding and window counts, i.e. padding and windowing are dynamic in the graph.
"""
import copy
import os
import sys

import pytest
import torch

from mmdet_efficientvit.analysis.builders import (Backbone, RawDetector, build_backbone,
                                                  build_detector, randomize_batchnorm)
from mmdet_efficientvit.models.utils import deploy_model

ort = pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.deployment.onnx_export import check_onnx, export_onnx  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tools', 'deployment'))
CONFIG = os.path.join(REPO, 'configs', 'retinanet_evit_m0_fpn_1x_coco.py')
# Stage maps of 128x512: 8x32, 4x16, 2x8 -> pads (6, 3), (3, 5), (5, 6), 10 / 6 / 4 windows;
# of 192x960: 12x60, 6x30, 3x15 -> other pads and 18 / 5 / 3 windows. Every stage uses windows.
SIZES = [(128, 512), (192, 960)]


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return Backbone(randomize_batchnorm(build_backbone('m0'))).eval()


def test_deploy_parity_backbone_and_detector(backbone):
    x = torch.randn(2, 3, *SIZES[0])
    with torch.no_grad():
        before = backbone(x)
        deployed = deploy_model(copy.deepcopy(backbone))
        assert deploy_model(deployed) is deployed  # idempotent
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())
        assert max_diff(deployed(x), before) < 1e-4

    detector = randomize_batchnorm(build_detector(CONFIG))
    raw = RawDetector(detector).eval()
    with torch.no_grad():
        before = raw(x)
        deploy_model(detector)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in detector.modules())
        assert max_diff(raw(x), before) < 1e-4


def test_backbone_onnx_dynamic_hw(backbone, tmp_path):
    model = deploy_model(copy.deepcopy(backbone))
    path = export_onnx(model, str(tmp_path / 'm0.onnx'), torch.randn(1, 3, *SIZES[0]))
    records = check_onnx(path, model, [torch.randn(1, 3, *SIZES[0]), torch.randn(2, 3, *SIZES[1])])
    assert [r['shape'] for r in records] == [(1, 3, 128, 512), (2, 3, 192, 960)]
    assert all(r['max_abs_diff'] <= 1e-4 and r['max_abs_ref'] > 0.5 for r in records)


def test_check_onnx_fails_on_mismatch(backbone, tmp_path):
    """The check is real: a graph exported from another model must be rejected."""
    model = deploy_model(copy.deepcopy(backbone))
    path = export_onnx(model, str(tmp_path / 'm0.onnx'), torch.randn(1, 3, *SIZES[0]))
    other = deploy_model(Backbone(randomize_batchnorm(build_backbone('m0'), seed=1)))
    with pytest.raises(RuntimeError, match='differs from PyTorch'):
        check_onnx(path, other, [torch.randn(1, 3, *SIZES[0])])


def test_export_tool_detector(tmp_path, capsys):
    """The tool end to end: deployed RetinaNet-M0 without NMS, two sizes, exit 0."""
    import export_onnx as tool
    out = tool.main([CONFIG, '--shape', '128x512', '--check-sizes', '128x512', '192x960',
                     '--out', str(tmp_path / 'det.onnx')])
    text = capsys.readouterr().out
    assert os.path.isfile(out)
    assert text.count(': OK') == 2
    import onnx
    graph = onnx.load(out).graph
    names = [o.name for o in graph.output]
    assert names == [f'cls_score_{i}' for i in range(5)] + [f'bbox_pred_{i}' for i in range(5)]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', '', 'height', 'width']
