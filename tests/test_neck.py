"""EfficientViTFPN: output strides and channels, the official parameter layout, mmdet FPN parity."""
import pytest
import torch
from mmdet.models.necks import FPN
from mmdet.registry import MODELS

import mmdet_efficientvit  # noqa: F401  (registers EfficientViTFPN)
from mmdet_efficientvit.models.necks import EfficientViTFPN

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
    with pytest.raises(ValueError, match='num_extra_trans_convs'):
        EfficientViTFPN(M4_CHANNELS, OUT, num_outs=3, num_extra_trans_convs=1)
