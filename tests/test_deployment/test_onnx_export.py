"""Deploy (BN folding, shared convs untied) parity and ONNX export parity of the backbone and the
detector.

The exported graphs must match PyTorch within 1e-4 at input sizes whose attention windows need
different padding and window counts, and at sizes whose stage maps fit in one window (attended whole
and unpadded): one graph, exported at any size, serves both regimes.
"""
import copy
import os

import pytest
import torch
from _data import REPO, load_tool

from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm
from mmdet_efficientvit.deployment.traceable import BackboneFeatureMaps, RawDetector
from mmdet_efficientvit.errors import ConfigError, SetupError
from mmdet_efficientvit.models.builders import build_backbone, build_detector
from mmdet_efficientvit.models.utils import deploy_model

ort = pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')

from mmdet_efficientvit.deployment.onnx_export import check_onnx, export_onnx  # noqa: E402

CONFIG = str(REPO / 'configs' / 'retinanet_evit_m0_fpn_1x_coco.py')
# Stage maps of 128x512: 8x32, 4x16, 2x8 -> pads (6, 3), (3, 5), (5, 6), 10 / 6 / 4 windows;
# of 192x960: 12x60, 6x30, 3x15 -> other pads and 18 / 5 / 3 windows. Every stage uses windows.
SIZES = [(128, 512), (192, 960)]
# Stage maps that fit in one 7x7 window (attended whole, unpadded): 96x64 -> 6x4, 3x2, 2x1 (all
# stages); 320x192 -> 20x12, 10x6 windowed, 5x3 whole; 112x112 -> 7x7 exactly, 4x4, 2x2.
SMALL_SIZES = [(96, 64), (320, 192), (112, 112)]


def max_diff(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope='module')
def backbone():
    torch.manual_seed(0)
    return BackboneFeatureMaps(randomize_batchnorm(build_backbone('m0'))).eval()


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


def test_deploy_unties_shared_convs():
    """RTMDetSepBNHead(share_conv=True) shares each conv between levels that have their own BNs:
    deployed == unfused only because the shared convs are untied before folding; mmcv's
    ``fuse_conv_bn`` alone folds every level's BN into the one conv."""
    from mmcv.cnn import fuse_conv_bn
    torch.manual_seed(0)
    detector = randomize_batchnorm(build_detector('mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'))
    head = detector.bbox_head
    assert head.cls_convs[1][0].conv is head.cls_convs[0][0].conv
    x = torch.randn(2, 3, 128, 160)
    with torch.no_grad():
        before = RawDetector(detector)(x)
        tied = fuse_conv_bn(copy.deepcopy(detector))  # deepcopy keeps the sharing
        assert max_diff(RawDetector(tied)(x), before) > 1e-2
        deploy_model(detector)
        assert head.cls_convs[1][0].conv is not head.cls_convs[0][0].conv
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in detector.modules())
        assert max_diff(RawDetector(detector)(x), before) < 1e-4


@pytest.mark.parametrize('export_size', [SIZES[0], SMALL_SIZES[0]], ids=['windowed', 'one-window'])
def test_backbone_onnx_one_graph_all_sizes(backbone, tmp_path, export_size):
    """Exported where every stage splits into windows, or where every stage fits in one window, the
    graph matches PyTorch at both kinds of size (and batch 2): the regime is chosen in the graph."""
    model = deploy_model(copy.deepcopy(backbone))
    path = export_onnx(model, str(tmp_path / 'm0.onnx'), torch.randn(1, 3, *export_size))
    sizes = [SIZES[1]] + SMALL_SIZES
    records = check_onnx(path, model, [torch.randn(2 if i % 2 == 0 else 1, 3, *s)
                                       for i, s in enumerate(sizes)])
    assert [r['shape'][2:] for r in records] == sizes
    assert all(r['max_abs_diff'] <= 1e-4 and r['max_abs_ref'] > 0.5 for r in records)


def test_one_window_attention_is_unpadded(backbone):
    """The traced path (pad to one window, mask the padding) equals the eager whole-map attention,
    and the padding really is masked: without the mask the output changes."""
    from mmdet_efficientvit.models.backbones.efficientvit import LocalWindowAttention
    lwa = next(m for m in backbone.modules() if isinstance(m, LocalWindowAttention))
    x = torch.randn(2, lwa.attn.qkvs[0].c.in_channels * lwa.attn.num_heads, 5, 3)
    with torch.no_grad():
        eager = lwa(x)
        traced = torch.jit.trace(lwa, torch.randn(1, x.shape[1], 20, 9), check_trace=False)
        assert torch.allclose(traced(x), eager, atol=1e-5)
        padded = torch.nn.functional.pad(x, (0, 4, 0, 2))  # one 7x7 window, padding attended
        assert not torch.allclose(lwa.attn(padded)[..., :5, :3], eager, atol=1e-3)


def test_check_onnx_fails_on_mismatch(backbone, tmp_path):
    """The check is real: a graph exported from another model must be rejected."""
    model = deploy_model(copy.deepcopy(backbone))
    path = export_onnx(model, str(tmp_path / 'm0.onnx'), torch.randn(1, 3, *SIZES[0]))
    other = deploy_model(BackboneFeatureMaps(randomize_batchnorm(build_backbone('m0'), seed=1)))
    with pytest.raises(RuntimeError, match='differs from PyTorch'):
        check_onnx(path, other, [torch.randn(1, 3, *SIZES[0])])


def test_export_tool_default_check_sizes():
    """By default the check covers stage maps that fit in one window (< 448 px), a size that is
    not a multiple of 32 and 800x1216."""
    args = load_tool('deployment/export_onnx.py').parse_args(['m0'])
    assert args.check_batch == 2
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.check_sizes]
    assert (800, 1216) in sizes and any(max(h, w) < 448 for h, w in sizes)
    assert any(h % 32 and w % 32 for h, w in sizes)


def test_export_tool_detector(tmp_path, capsys):
    """The tool end to end: deployed RetinaNet-M0 without NMS, two sizes, exit 0."""
    tool = load_tool('deployment/export_onnx.py')
    out = tool.main([CONFIG, '--shape', '128x512', '--check-sizes', '128x512', '192x960',
                     '--check-batch', '1', '--out', str(tmp_path / 'det.onnx')])
    text = capsys.readouterr().out
    assert os.path.isfile(out)
    assert text.count(': OK') == 2
    import onnx
    graph = onnx.load(out).graph
    names = [o.name for o in graph.output]
    assert names == [f'cls_score_{i}' for i in range(5)] + [f'bbox_pred_{i}' for i in range(5)]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', '', 'height', 'width']


def test_export_tool_bad_input(retinanet_e2e, tmp_path):
    tool = load_tool('deployment/export_onnx.py')
    with pytest.raises(ConfigError, match='supports RetinaNet.*FasterRCNN'):
        tool.main(['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '--end2end',
                   '--out', str(tmp_path / 'x.onnx')])
    with pytest.raises(SetupError, match='already exists.*--overwrite'):
        tool.main([retinanet_e2e['cfg'], '--end2end', '--out', retinanet_e2e['onnx']])
    with pytest.raises(SystemExit):
        tool.parse_args([retinanet_e2e['cfg'], '--quantize', 'int8'])
