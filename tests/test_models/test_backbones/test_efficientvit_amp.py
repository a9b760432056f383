"""Mixed precision: the backbone's numerics under autocast (bfloat16 on the CPU; the GPU check script
covers float16/bfloat16 on CUDA), a training step of backbone + neck under autocast, a dtype move, and
``train.py --amp`` (mmengine's AmpOptimWrapper; one clear line on a machine without a GPU)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from _data import CONFIGS, load_tool, randomize, run_tool
from mmdet_efficientvit.models.builders import build_backbone_and_neck
from mmdet_efficientvit.analysis.precision import GRADIENT_COSINE, TOLERANCE, relative_error
from mmdet_efficientvit.models.backbones.efficientvit import EfficientViT


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


def test_a_dtype_move_runs_in_that_dtype():
    model = m0()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = model(x)
        doubled = model.double()(x.double())
    assert all(o.dtype == torch.float64 for o in doubled)
    assert relative_error(doubled, ref) < 1e-5


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
