"""EfficientViT backbone: structure, shapes for any input size, windowing, training switches, deploy."""
import itertools
import math

import pytest
import timm
import torch
import torch.nn as nn

from mmdet_efficientvit.models.backbones.efficientvit import (EfficientViT, LocalWindowAttention,
                                                              relative_bias_index)
from mmdet_efficientvit.models.utils.checkpoint import timm_to_official

from mmdet_efficientvit.model_zoo import ARCHS

from _data import max_rel_err, official_bias_idxs, randomize

# Official classification models (1000-class head included) minus their head (BN + Linear).
OFFICIAL_BACKBONE_PARAMS = {'m0': 2_156_052, 'm1': 2_787_176, 'm2': 3_962_106, 'm3': 6_579_082,
                            'm4': 8_418_460, 'm5': 12_088_004}


pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_count_matches_official_classifier_without_head(arch):
    model = EfficientViT(arch.upper(), window_size=(7, 7, 4))
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_BACKBONE_PARAMS[arch]
    assert model.embed_dims == EfficientViT.arch_zoo[arch]['embed_dims']


def test_official_parameter_names():
    keys = set(EfficientViT('m4').state_dict())
    for key in ('patch_embed.0.c.weight', 'patch_embed.6.bn.running_var',
                'blocks1.0.dw0.m.c.weight', 'blocks1.0.ffn0.m.pw1.c.weight',
                'blocks1.0.mixer.m.attn.qkvs.3.bn.bias', 'blocks1.0.mixer.m.attn.dws.0.c.weight',
                'blocks1.0.mixer.m.attn.proj.1.c.weight', 'blocks1.0.mixer.m.attn.attention_biases',
                'blocks2.0.0.m.c.weight', 'blocks2.0.1.m.pw2.bn.weight', 'blocks2.1.conv1.c.weight',
                'blocks2.1.se.fc1.weight', 'blocks2.1.se.fc2.bias', 'blocks2.1.conv3.bn.weight',
                'blocks2.2.1.m.pw1.c.weight', 'blocks3.5.ffn1.m.pw2.c.weight'):
        assert key in keys, key
    assert not any('attention_bias_idxs' in k for k in keys)


def test_arch_validation_and_custom_dict():
    custom = dict(embed_dims=[32, 48, 64], depths=[1, 1, 1], num_heads=[2, 2, 2],
                  kernels=[5, 3], key_dims=[8, 8, 8])
    model = EfficientViT(custom, window_size=5, out_indices=(2, ))
    assert model.arch_name == 'custom' and model.window_size == (5, 5, 5)
    out = model.eval()(torch.randn(1, 3, 100, 70))
    assert len(out) == 1 and out[0].shape == (1, 64, 2, 2)
    assert EfficientViT(dict(EfficientViT.arch_zoo['m2'])).arch_name == 'M2'
    with pytest.raises(ValueError, match='Unknown EfficientViT arch'):
        EfficientViT('m9')
    with pytest.raises(ValueError, match='exactly the keys'):
        EfficientViT(dict(embed_dims=[64, 128, 192]))
    with pytest.raises(ValueError, match='out_indices'):
        EfficientViT('m0', out_indices=(3, ))
    with pytest.raises(ValueError, match='window_size'):
        EfficientViT('m0', window_size=(7, 7))


# 21 sizes (H, W): tiny, odd, non-square, smaller than a window in one or both directions, 1333×800.
SIZES = [(1, 1), (1, 9), (5, 3), (16, 400), (31, 17), (33, 65), (64, 64), (97, 129), (111, 224),
         (112, 113), (127, 255), (200, 33), (223, 225), (224, 224), (240, 240), (255, 383),
         (320, 320), (416, 416), (513, 301), (800, 1333), (1333, 800)]


@pytest.mark.parametrize('arch', ARCHS)
@torch.no_grad()
def test_output_shapes_for_any_input_size(arch):
    model = EfficientViT(arch).eval()
    for h, w in SIZES:
        outs = model(torch.randn(1, 3, h, w))
        assert len(outs) == 3
        for i, out in enumerate(outs):
            steps = 4 + i  # stride-2 steps before stage i: 4 in the patch embed, 1 per merging
            exp_h, exp_w = h, w
            for _ in range(steps):
                exp_h, exp_w = math.ceil(exp_h / 2), math.ceil(exp_w / 2)
            assert out.shape == (1, model.embed_dims[i], exp_h, exp_w), (arch, h, w, i)
            assert torch.isfinite(out).all()


@torch.no_grad()
def test_out_stride8_adds_the_patch_embed_map_and_changes_nothing_else():
    plain = EfficientViT('m0').eval()
    model = EfficientViT('m0', out_stride8=True).eval()
    model.load_state_dict(plain.state_dict())  # same parameters: the option adds none
    x = torch.randn(1, 3, 97, 129)
    outs = model(x)
    assert len(outs) == 4 and outs[0].shape == (1, model.embed_dims[0] // 2, 13, 17)
    torch.testing.assert_close(outs[0], plain.patch_embed[:6](x), rtol=0, atol=1e-6)
    for a, b in zip(outs[1:], plain(x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_relative_bias_index_uses_real_offsets():
    for (h, w), r in [((7, 7), 7), ((3, 5), 7), ((1, 4), 7), ((4, 4), 4)]:
        index = relative_bias_index(h, w, r, torch.device('cpu'))
        points = list(itertools.product(range(h), range(w)))
        expected = [[abs(a[0] - b[0]) * r + abs(a[1] - b[1]) for b in points] for a in points]
        assert index.tolist() == expected


def test_official_enumeration_of_bias_offsets():
    """The official code numbers offsets in first-seen order; for a full window that is dy·R+dx."""
    r = 7
    assert torch.equal(relative_bias_index(r, r, r, torch.device('cpu')), official_bias_idxs(r))


def test_official_bias_index_buffers_load_strictly_and_are_checked():
    """Released checkpoints carry ``attention_bias_idxs``; a strict load accepts the official ones
    (which we compute instead of storing) and refuses any other index."""
    model = EfficientViT('m0')
    state_dict = model.state_dict()
    tables = [k for k in state_dict if k.endswith('attention_biases')]
    official = official_bias_idxs(7)
    for k in tables:
        state_dict[k.replace('attention_biases', 'attention_bias_idxs')] = official
    model.load_state_dict(state_dict, strict=True)
    state_dict[tables[0].replace('attention_biases', 'attention_bias_idxs')] = official.flip(0)
    with pytest.raises(RuntimeError, match='attention_bias_idxs.*not the official'):
        model.load_state_dict(state_dict, strict=True)


@torch.no_grad()
def test_window_padding_matches_explicit_zero_pad_partition():
    """Block input zero-padded to a multiple of the window, windows attended alone, then cropped."""
    torch.manual_seed(0)
    lwa = randomize(LocalWindowAttention(32, 16, 2, 7, [5, 3])).eval()
    x = torch.randn(2, 32, 10, 16)
    padded = torch.zeros(2, 32, 14, 21)
    padded[:, :, :10, :16] = x
    expected = torch.zeros(2, 32, 14, 21)
    for i in range(2):
        for j in range(3):
            win = padded[:, :, 7 * i:7 * i + 7, 7 * j:7 * j + 7]
            expected[:, :, 7 * i:7 * i + 7, 7 * j:7 * j + 7] = lwa.attn(win)
    assert torch.allclose(lwa(x), expected[:, :, :10, :16], atol=1e-6)
    # a map that fits in one window attends over itself
    small = torch.randn(1, 32, 3, 5)
    assert torch.allclose(lwa(small), lwa.attn(small))


def test_attention_follows_bias_updates_in_eval():
    """The gathered bias is not kept between calls: an in-place update shows at once."""
    lwa = randomize(LocalWindowAttention(32, 16, 2, 7, [5, 3])).eval()
    x = torch.randn(1, 32, 7, 7)
    with torch.no_grad():
        before = lwa(x)
        lwa.attn.attention_biases.add_(1.5 * torch.randn_like(lwa.attn.attention_biases))
        after = lwa(x)
    assert not torch.allclose(before, after)
    assert torch.allclose(after, lwa(x).detach(), atol=1e-5)  # the same with autograd on


def _bn_modes(model: nn.Module):
    return {n: m.training for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}


@pytest.mark.parametrize('frozen_stages', [-1, 0, 1, 2, 3])
def test_frozen_stages(frozen_stages):
    model = EfficientViT('m0', frozen_stages=frozen_stages)
    model.train()
    frozen_prefixes = [('patch_embed.', 'blocks1.', 'blocks2.', 'blocks3.')[i]
                       for i in range(frozen_stages + 1)]
    x = torch.randn(2, 3, 64, 96, requires_grad=True)  # so a fully frozen backbone can backprop
    model(x)[-1].sum().backward()
    for name, p in model.named_parameters():
        frozen = name.startswith(tuple(frozen_prefixes))
        assert p.requires_grad is not frozen, name
        assert (p.grad is None) is frozen, name
    for name, training in _bn_modes(model).items():
        assert training is not (name + '.').startswith(tuple(frozen_prefixes)), name


def test_norm_eval_keeps_every_bn_in_eval():
    model = randomize(EfficientViT('m0', norm_eval=True)).train()
    assert not any(_bn_modes(model).values())
    stats = model.patch_embed[0].bn.running_mean.clone()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)[-1]
    assert torch.equal(stats, model.patch_embed[0].bn.running_mean)
    out.sum().backward()  # frozen statistics, trainable affine parameters
    assert all(p.grad is not None for p in model.parameters())
    assert model.blocks1.training  # only the norms are switched
    with torch.no_grad():
        assert torch.allclose(out, model.eval()(x)[-1], atol=1e-5)
    assert all(_bn_modes(EfficientViT('m0', norm_eval=False).train()).values())


def test_with_cp_gives_identical_outputs_and_grads():
    torch.manual_seed(0)
    ref = randomize(EfficientViT('m0')).train()
    ckpt = EfficientViT('m0', with_cp=True).train()
    ckpt.load_state_dict(ref.state_dict())
    calls = []
    ckpt.blocks2[3].register_forward_pre_hook(lambda *args: calls.append(1))
    x1 = torch.randn(2, 3, 96, 80, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out1, out2 = ref(x1), ckpt(x2)
    for a, b in zip(out1, out2, strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    sum(o.sum() for o in out1).backward()
    sum(o.sum() for o in out2).backward()
    assert len(calls) == 2  # the block ran again during backward: activations were not kept
    assert torch.allclose(x1.grad, x2.grad, atol=1e-5)
    g1 = dict(ref.named_parameters())
    for name, p in ckpt.named_parameters():
        assert torch.allclose(p.grad, g1[name].grad, atol=1e-5, rtol=1e-4), name


def test_drop_path_is_stochastic_in_training_only():
    model = randomize(EfficientViT('m0', drop_path_rate=0.5))
    x = torch.randn(4, 3, 64, 64)
    model.train()
    torch.manual_seed(1)
    a = model(x)[-1]
    torch.manual_seed(2)
    b = model(x)[-1]
    assert not torch.allclose(a, b)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x)[-1], model(x)[-1])


@pytest.mark.parametrize('arch', ARCHS)
@torch.no_grad()
def test_switch_to_deploy_equivalence(arch):
    """Unfused and deployed outputs agree with each other and with timm's plain Conv→BN model."""
    ref_model = randomize(timm.create_model(f'efficientvit_{arch}', num_classes=0),
                          seed=ARCHS.index(arch)).eval()
    model = EfficientViT(arch, window_size=(7, 7, 4)).eval()
    model.load_state_dict(timm_to_official(ref_model.state_dict()))
    x = torch.randn(2, 3, 224, 320)  # stage maps 14×20, 7×10, 4×5: every stage pads
    ref = ref_model.forward_intermediates(x, intermediates_only=True)
    unfused = model(x)
    model.switch_to_deploy()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    deployed = model(x)
    model.switch_to_deploy()  # idempotent
    again = model(x)
    for r, u, d, a in zip(ref, unfused, deployed, again, strict=True):
        assert max_rel_err(u, r) < 1e-5
        assert max_rel_err(d, u) < 1e-5
        assert torch.equal(d, a)
    # a deploy=True build has the fused structure: the deployed state_dict reloads strictly
    fresh = EfficientViT(arch, window_size=(7, 7, 4), deploy=True).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    for d, f in zip(deployed, fresh(x), strict=True):
        assert torch.equal(d, f)


def test_runs_under_inference_mode():
    model = EfficientViT('m0').eval()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        ref = model(x)
    with torch.inference_mode():
        for a, b in zip(model(x), ref, strict=True):
            assert torch.equal(a, b)
        built_inside = EfficientViT('m0').eval()  # parameters that are inference tensors
        built_inside.load_state_dict(model.state_dict())
        for a, b in zip(built_inside(x), ref, strict=True):
            assert torch.allclose(a, b, atol=1e-6)


@torch.no_grad()
def test_eval_outputs_follow_load_state_dict():
    """Unfused eval runs conv then BN on the current tensors: new weights show at once."""
    model = EfficientViT('m0').eval()
    x = torch.randn(1, 3, 64, 64)
    model(x)
    other = randomize(EfficientViT('m0'), seed=3).eval()
    model.load_state_dict(other.state_dict())
    for a, b in zip(model(x), other(x), strict=True):
        assert torch.equal(a, b)


def test_train_eval_switching_gives_fresh_results():
    """Training updates the BN statistics and the weights; eval afterwards uses the new ones, equal to
    a fresh model loaded with the trained state_dict."""
    torch.manual_seed(0)
    model = randomize(EfficientViT('m0')).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        first = model(x)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 96))).backward()
    optimizer.step()
    model.eval()
    fresh = EfficientViT('m0').eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        second, expected = model(x), fresh(x)
    for f, s, e in zip(first, second, expected, strict=True):
        assert not torch.allclose(f, s)
        assert torch.equal(s, e)
