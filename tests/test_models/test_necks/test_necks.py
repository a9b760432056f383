"""EfficientViTFPN: output strides and channels, the official parameter layout, mmdet FPN parity; the
RTMDet stride bridges (EfficientViTFPN with three outputs, EfficientViTPAFPN)."""
import pytest
import torch
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

import mmdet_efficientvit  # noqa: F401  (registers EfficientViTFPN)
from mmdet_efficientvit.models.necks import EfficientViTFPN, EfficientViTPAFPN

from _data import official_neck_shapes

M4_CHANNELS = [128, 256, 384]
OUT = 32  # small out_channels keeps the tests fast; the layout does not depend on it


def backbone_maps(channels=M4_CHANNELS, size=(96, 128)):
    """Random maps at strides 16/32/64 of a size x image (ceil division, like stride-2 convs)."""
    h, w = size
    maps = []
    for level, c in enumerate(channels):
        s = 16 * 2**level
        maps.append(torch.randn(2, c, -(-h // s), -(-w // s)))
    return tuple(maps)


def level_size(h: int, w: int, stride: int):
    """A level's map size: strided convs round up; a transposed-conv level doubles stride 16's."""
    if stride < 16:
        return tuple(2 * level for level in level_size(h, w, 2 * stride))
    return -(-h // stride), -(-w // stride)


RETINANET = dict(in_channels=M4_CHANNELS, out_channels=OUT, start_level=0, add_extra_convs='on_input',
                 num_outs=5, num_extra_trans_convs=1)
MASK_RCNN = dict(in_channels=M4_CHANNELS, out_channels=OUT, start_level=0, num_outs=5,
                 num_extra_trans_convs=2)


@pytest.mark.parametrize('cfg, strides, num_extra_convs', [
    (RETINANET, (8, 16, 32, 64, 128), 1),
    (MASK_RCNN, (4, 8, 16, 32, 64), 0),
])
def test_strides_channels_and_official_layout(cfg, strides, num_extra_convs):
    neck = MODELS.build(dict(type='EfficientViTFPN', **cfg))
    assert isinstance(neck, EfficientViTFPN)
    h, w = 128, 256  # divisible by 128: every level has an exact size
    outs = neck(backbone_maps(size=(h, w)))
    assert [tuple(o.shape) for o in outs] == [(2, OUT, h // s, w // s) for s in strides]

    expected = official_neck_shapes(M4_CHANNELS, OUT, cfg['num_extra_trans_convs'], num_extra_convs)
    got = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert got == expected
    # a state_dict in the official layout loads strictly and is used
    official = {k: torch.randn(s) for k, s in expected.items()}
    neck.load_state_dict(official, strict=True)
    for k, v in neck.state_dict().items():
        assert torch.equal(v, official[k]), k


def test_no_trans_convs_equals_mmdet_fpn():
    """With num_extra_trans_convs=0 the neck is exactly mmdet's FPN (same weights -> same outputs)."""
    kw = dict(in_channels=M4_CHANNELS, out_channels=OUT, num_outs=5, add_extra_convs='on_output',
              relu_before_extra_convs=True)
    ours, ref = EfficientViTFPN(**kw), FPN(**kw)
    ours.init_weights()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = backbone_maps(size=(100, 140))  # odd sizes exercise size-matched upsampling
    for a, b in zip(ours(x), ref(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_extra_levels_follow_official_arithmetic():
    """Finer levels: trans convs chain from the finest lateral *after* the top-down pass; the finest map
    is smoothed by extra_fpn_convs[0]. Checked against a hand-written computation."""
    neck = EfficientViTFPN(**MASK_RCNN)
    neck.init_weights()
    for p in neck.parameters():  # non-zero biases so a wrong pairing shows up
        torch.nn.init.normal_(p, std=0.1)
    x = backbone_maps(size=(128, 128))
    f = torch.nn.functional
    lat = [f.conv2d(x[i], neck.lateral_convs[i].conv.weight, neck.lateral_convs[i].conv.bias)
           for i in range(3)]
    lat[1] = lat[1] + f.interpolate(lat[2], size=lat[1].shape[2:], mode='nearest')
    lat[0] = lat[0] + f.interpolate(lat[1], size=lat[0].shape[2:], mode='nearest')
    t = neck.extra_trans_convs
    up8 = f.conv_transpose2d(lat[0], t[0].conv.weight, t[0].conv.bias, stride=2)
    up4 = f.conv_transpose2d(up8, t[1].conv.weight, t[1].conv.bias, stride=2)
    e = neck.extra_fpn_convs
    expected = [f.conv2d(up4, e[0].conv.weight, e[0].conv.bias, padding=1),
                f.conv2d(up8, e[1].conv.weight, e[1].conv.bias, padding=1)]
    expected += [f.conv2d(lat[i], neck.fpn_convs[i].conv.weight, neck.fpn_convs[i].conv.bias, padding=1)
                 for i in range(3)]
    outs = neck(x)
    assert len(outs) == 5
    for a, b in zip(outs, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_bad_num_outs_is_explained():
    with pytest.raises(ValueError, match='num_outs=1 must exceed num_extra_trans_convs=1'):
        EfficientViTFPN(M4_CHANNELS, OUT, num_outs=1, num_extra_trans_convs=1)
    with pytest.raises(ValueError, match="add_extra_convs='on_input' adds levels above"):
        EfficientViTFPN(M4_CHANNELS, OUT, num_outs=3, num_extra_trans_convs=1,
                        add_extra_convs='on_input')


def test_rtmdet_bridge_drops_the_coarsest_output_but_uses_its_map():
    """num_outs=3 with one transposed-conv level: strides 8/16/32 (RTMDet's); the stride-64 map has
    no output conv of its own but still enters the top-down sum; the other levels are unchanged."""
    bridge = EfficientViTFPN(M4_CHANNELS, OUT, num_outs=3, num_extra_trans_convs=1)
    full = EfficientViTFPN(M4_CHANNELS, OUT, num_outs=4, num_extra_trans_convs=1)
    assert len(bridge.fpn_convs) == 2 and len(full.fpn_convs) == 3
    full.init_weights()
    missing, unexpected = bridge.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected == ['fpn_convs.2.conv.weight', 'fpn_convs.2.conv.bias']
    h, w = 100, 140  # not a multiple of 64: size-matched upsampling
    x = backbone_maps(size=(h, w))
    outs = bridge(x)
    assert [tuple(o.shape) for o in outs] == [(2, OUT, *level_size(h, w, s)) for s in (8, 16, 32)]
    for a, b in zip(outs, full(x)[:3], strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    changed = (x[0], x[1], torch.randn_like(x[2]))
    assert not torch.allclose(bridge(changed)[1], outs[1])  # the stride-64 map matters


@pytest.mark.parametrize('size', [(128, 128), (333, 491)])
def test_pafpn_bridge_strides_and_every_parameter_used(size):
    """EfficientViTPAFPN: a transposed-conv stride-8 map, CSPNeXt top-down over four maps and
    bottom-up over the three outputs; odd image sizes give the maps a strided conv would."""
    neck = MODELS.build(dict(type='EfficientViTPAFPN', in_channels=M4_CHANNELS, out_channels=OUT,
                             num_csp_blocks=1))
    assert isinstance(neck, EfficientViTPAFPN)
    h, w = size
    x = backbone_maps(size=size)
    outs = neck(x)
    assert [tuple(o.shape) for o in outs] == [(2, OUT, *level_size(h, w, s)) for s in (8, 16, 32)]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in neck.parameters())  # nothing built that is not used
    changed = (x[0], x[1], torch.randn_like(x[2]))
    assert not torch.allclose(neck(changed)[0], outs[0])  # the stride-64 map reaches stride 8


def test_pafpn_bridge_takes_a_backbone_stride8_map():
    """With four input maps (``EfficientViT(out_stride8=True)``) the stride-8 map is the input's
    own, no transposed conv is built, and the stride-8 input reaches every output."""
    neck = EfficientViTPAFPN([64, *M4_CHANNELS], OUT, num_csp_blocks=1)
    assert neck.stride8 is None
    h, w = 333, 491
    x = (torch.randn(2, 64, *level_size(h, w, 8)), *backbone_maps(size=(h, w)))
    outs = neck(x)
    assert [tuple(o.shape) for o in outs] == [(2, OUT, *level_size(h, w, s)) for s in (8, 16, 32)]
    sum(o.sum() for o in outs).backward()
    assert all(p.grad is not None for p in neck.parameters())
    changed = (torch.randn_like(x[0]), *x[1:])
    assert not torch.allclose(neck(changed)[2], outs[2])  # stride 8 informs stride 32


def test_pafpn_bridge_refuses_other_inputs():
    with pytest.raises(ValueError, match='takes the backbone maps'):
        EfficientViTPAFPN([128, 256], OUT)
    with pytest.raises(ValueError, match='stride8_channels=32'):
        EfficientViTPAFPN([64, *M4_CHANNELS], OUT, stride8_channels=32)
    neck = EfficientViTPAFPN(M4_CHANNELS, OUT)
    with pytest.raises(ValueError, match='expects 3 feature maps'):
        neck(backbone_maps()[:2])
