"""Mixed precision: the backbone's numerics under autocast (bfloat16 on the CPU; the GPU check script
covers float16/bfloat16 on CUDA), a training step of backbone + neck under autocast, the folded-BN and
attention-bias caches under autocast and after dtype moves or replaced tensors, and ``train.py --amp``
(mmengine's AmpOptimWrapper; one clear line on a machine without a GPU)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from _data import CONFIGS, load_tool, randomize, run_tool
from mmdet_efficientvit.models.builders import build_backbone_and_neck
from mmdet_efficientvit.analysis.precision import GRADIENT_COSINE, TOLERANCE, relative_error
from mmdet_efficientvit.models.backbones.efficientvit import (CascadedGroupAttention, Conv2dBN,
                                                              EfficientViT)


def m0(deploy: bool = False) -> EfficientViT:
    torch.manual_seed(0)
    model = randomize(EfficientViT('m0')).eval()
    if deploy:
        model.switch_to_deploy()
    return model


@pytest.mark.parametrize('deploy', [False, True], ids=['unfused', 'deployed'])
def test_backbone_bf16_autocast_stays_close_to_fp32(deploy):
    model = m0(deploy)
    x = torch.randn(1, 3, 160, 256)  # stage maps of 10x16, 5x8, 3x4: padded windows in stage 1
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', torch.bfloat16):
            out = model(x)
    assert all(o.dtype == torch.bfloat16 for o in out)  # autocast really ran the convs in bf16
    err = relative_error(out, ref)
    assert 0 < err < TOLERANCE['bfloat16'], err


def test_train_step_under_bf16_autocast_gives_finite_gradients_along_fp32():
    """With the configs' frozen BatchNorms the bf16 gradients point along the fp32 ones (see
    ``precision.GRADIENT_COSINE``)."""
    torch.manual_seed(0)
    backbone, neck = build_backbone_and_neck('m0')
    backbone, neck = randomize(backbone).train(), neck.train()
    assert not any(m.training for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(2, 3, 128, 160)

    def grads(autocast: bool) -> torch.Tensor:
        b, n = copy.deepcopy(backbone), copy.deepcopy(neck)
        with torch.autocast('cpu', torch.bfloat16, enabled=autocast):
            loss = sum(o.float().square().mean() for o in n(b(x)))
        loss.backward()
        params = list(b.parameters()) + list(n.parameters())
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in params)
        assert all(torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in params)
        return torch.cat([p.grad.flatten() for p in params])

    mixed, full = grads(True), grads(False)
    assert F.cosine_similarity(mixed.double(), full.double(), dim=0) > GRADIENT_COSINE


def test_folded_bn_cache_under_autocast_is_fp32_and_follows_updates():
    torch.manual_seed(0)
    m = randomize(Conv2dBN(16, 32, 3, 1, 1)).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16):
        m(x)
        weight, bias = m.folded_weight_bias()
        assert weight.dtype == bias.dtype == torch.float32  # folded once in fp32, cast per conv
        expected = m._fold(m.c.weight, m.bn.weight, m.bn.bias, m.bn.running_mean, m.bn.running_var,
                           m.bn.eps)
        assert torch.equal(weight, expected[0]) and torch.equal(bias, expected[1])
        assert m.folded_weight_bias()[0] is weight  # cached
        m.bn.weight.mul_(2)  # an optimiser-style in-place update
        assert torch.allclose(m.folded_weight_bias()[0], 2 * weight)
        out = m(x)
    ref = F.batch_norm(F.conv2d(x, m.c.weight, None, 1, 1), m.bn.running_mean, m.bn.running_var,
                       m.bn.weight, m.bn.bias, False, 0., m.bn.eps)
    assert out.dtype == torch.bfloat16
    assert relative_error([out], [ref]) < TOLERANCE['bfloat16']


def test_attention_bias_cache_under_autocast():
    torch.manual_seed(0)
    attn = randomize(CascadedGroupAttention(64, 16, 4, 7, [5] * 4)).eval()
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16):
        bias = attn.attention_bias(7, 7, torch.device('cpu'))
        assert bias.dtype == torch.float32 and attn.attention_bias(7, 7, torch.device('cpu')) is bias
        attn.attention_biases.add_(1)
        assert torch.allclose(attn.attention_bias(7, 7, torch.device('cpu')), bias + 1)


def test_caches_follow_a_dtype_move():
    model = m0()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        model(x)  # fills the fp32 caches
        ref = model(x)
        doubled = model.double()(x.double())
    assert all(o.dtype == torch.float64 for o in doubled)
    assert relative_error(doubled, ref) < 1e-5


def test_folded_bn_cache_not_fooled_by_a_new_tensor_at_a_freed_address():
    """A replaced buffer can get the old one's memory and version (CUDA's caching allocator hands freed
    blocks to the next tensor of their size all the time); the cache must still see a new tensor.
    Emulated without the allocator: a new tensor on the old storage, brought to the old version, with
    new contents written untracked."""
    torch.manual_seed(0)
    m = randomize(Conv2dBN(8, 16)).eval()
    x = torch.randn(1, 8, 4, 4)
    with torch.no_grad():
        m(x)
        old = m.bn.running_var
        new = torch.empty(0).set_(old.untyped_storage(), 0, old.shape)
        while new._version < old._version:
            new.add_(0)
        new.data.fill_(4.)  # what the next owner of freed memory writes: no version bump
        assert (new._version, new.data_ptr()) == (old._version, old.data_ptr()) and new is not old
        m.bn._buffers['running_var'] = new
        out = m(x)
    ref = F.batch_norm(m.c(x), m.bn.running_mean, new, m.bn.weight, m.bn.bias, False, 0., m.bn.eps)
    assert torch.allclose(out, ref, atol=1e-6)


# ------------------------------------------------------------------------------------------ train.py
@pytest.fixture
def train_tool():
    return load_tool('train.py')


def fake_gpu(monkeypatch, bf16: bool = True):
    """What mmengine and our check see on a GPU machine (the model still runs on the CPU)."""
    import mmengine.device
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp_wrapper
    monkeypatch.setattr(mmengine.device, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(amp_wrapper, 'is_cuda_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda *a, **k: 'Tesla V100-SXM2-16GB')


def test_amp_bf16_config_is_what_mmengines_wrapper_runs(train_tool, monkeypatch):
    fake_gpu(monkeypatch)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    train_tool.use_amp(cfg, 'bfloat16')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.optim_wrapper.loss_scale == 'dynamic'
    from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
    model = m0().train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, AmpOptimWrapper) and wrapper.cast_dtype == torch.bfloat16
    before = model.patch_embed[0].c.weight.detach().clone()
    with wrapper.optim_context(model):  # autocast on the device mmengine finds: the CPU here
        outs = model(torch.randn(2, 3, 64, 64))
    assert all(o.dtype == torch.bfloat16 for o in outs)
    wrapper.update_params(sum(o.float().square().mean() for o in outs))
    assert not torch.equal(model.patch_embed[0].c.weight, before)


def test_amp_fp16_default_and_bf16_refused_without_support(train_tool, monkeypatch):
    fake_gpu(monkeypatch, bf16=False)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))))
    train_tool.use_amp(cfg, 'float16')
    assert cfg.optim_wrapper.dtype == 'float16'
    with pytest.raises(train_tool.SetupError, match='Tesla V100-SXM2-16GB has no bfloat16 support; '
                                                     'use --amp-dtype float16'):
        train_tool.use_amp(cfg, 'bfloat16')


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the machine without a GPU')
def test_train_amp_without_gpu_is_one_line(tmp_path):
    proc = run_tool(['train.py', str(CONFIGS / 'retinanet_evit_m0_fpn_1x_coco.py'), '--amp-dtype',
                     'bfloat16', '--work-dir', str(tmp_path)])
    assert proc.returncode == 1
    assert proc.stderr[proc.stderr.index('error: '):].strip().splitlines() == [
        "error: --amp trains on a GPU (mmengine's AmpOptimWrapper needs CUDA, NPU, MLU or MUSA), and "
        'torch sees none here; train without --amp on the CPU']
