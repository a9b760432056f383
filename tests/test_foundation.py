"""The stack works: compiled mmcv ops, registration, the import guard, and safe checkpoint loading."""
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

import mmdet_efficientvit
from mmdet_efficientvit import compat


def test_mmcv_nms_matches_torchvision():
    from mmcv.ops import nms
    from torchvision.ops import nms as tv_nms
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=g) * 100
    wh = torch.rand(200, 2, generator=g) * 30 + 1
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(200, generator=g)
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    expected = tv_nms(boxes, scores, 0.5)
    assert 0 < len(keep) < 200
    assert torch.equal(keep, expected)
    assert torch.allclose(dets[:, 4], scores[expected])


def test_package_registers_into_mmdet_registry():
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet_efficientvit.models import EfficientViT, EfficientViTFPN
    init_default_scope('mmdet')
    assert MODELS.get('EfficientViT') is EfficientViT
    assert MODELS.get('EfficientViTFPN') is EfficientViTFPN
    # The way a user's config pulls us in.
    cfg = Config(dict(custom_imports=dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)))
    assert cfg.custom_imports['imports'] == ['mmdet_efficientvit']


def test_import_guard_names_missing_compiled_ops(monkeypatch):
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # what an mmcv built without ops looks like
    with pytest.raises(ImportError, match=r'mmcv\._ext is missing.*make setup'):
        compat.check_environment()


@pytest.mark.slow
def test_import_guard_on_fresh_import_without_ops():
    code = ("import sys; sys.modules['mmcv._ext'] = None\n"
            'import mmdet_efficientvit')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'compiled ops' in proc.stderr and 'make setup' in proc.stderr


def test_import_guard_names_unsupported_version(monkeypatch):
    import mmdet
    monkeypatch.setattr(mmdet, '__version__', '2.28.2')
    with pytest.raises(ImportError, match=r'mmdet>=3\.0\.0,<3\.4\.0, found mmdet==2\.28\.2.*make setup'):
        compat.check_environment()


@pytest.mark.parametrize('version', ['2.3.1', '2.5.1'])
def test_import_guard_names_the_torch_floor(monkeypatch, version):
    """torch 2.4/2.5 have add_safe_globals but not the (object, name) pairs the allow-list registers."""
    monkeypatch.setattr(torch, '__version__', version)
    with pytest.raises(ImportError, match=rf'torch>=2\.6\.0 \(.*add_safe_globals.*\), found '
                                          rf'torch=={re.escape(version)}\. .*make setup'):
        compat.check_environment()


@pytest.mark.slow
def test_old_torch_fails_at_import_with_the_floor_not_an_attribute_error():
    code = ("import torch, torch.serialization\n"
            "torch.__version__ = '2.3.1'\n"
            "del torch.serialization.add_safe_globals  # as on torch 2.3\n"
            "import mmdet_efficientvit\n")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'AttributeError' not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert 'torch>=2.6.0' in last and 'found torch==2.3.1' in last, proc.stderr[-2000:]


class _ToyModel(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, inputs, targets, mode='loss'):
        pred = self.linear(inputs)
        return dict(loss=((pred - targets) ** 2).mean())


class _ToyData(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, generator=g), targets=torch.randn(1, generator=g))


def _toy_runner(work_dir: Path, max_epochs: int, **kwargs) -> Runner:
    return Runner(
        model=_ToyModel(), work_dir=str(work_dir),
        train_dataloader=dict(dataset=_ToyData(), batch_size=2, collate_fn=dict(type='default_collate'),
                              sampler=dict(type='DefaultSampler', shuffle=True)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=[dict(type='LinearLR', start_factor=0.1, by_epoch=False, end=3),
                         dict(type='MultiStepLR', milestones=[1], by_epoch=True)],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)),
        experiment_name=f'toy_{max_epochs}_{id(kwargs)}', **kwargs)


@pytest.fixture(scope='module')
def runner_checkpoint(tmp_path_factory) -> Path:
    work_dir = tmp_path_factory.mktemp('runner')
    _toy_runner(work_dir, max_epochs=2).train()
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file()
    return ckpt


@pytest.mark.slow
def test_runner_checkpoint_needs_the_allow_list(runner_checkpoint):
    """Without our allow-list (plain torch + mmengine) the checkpoint is refused: the fix is needed."""
    code = ('import sys, torch\n'
            f'try:\n    torch.load({str(runner_checkpoint)!r})\n'
            'except Exception as e:\n    print(type(e).__name__, e); sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert 'HistoryBuffer' in proc.stdout


def test_runner_checkpoint_loads_with_load_checkpoint(runner_checkpoint):
    model = _ToyModel()
    ckpt = load_checkpoint(model, str(runner_checkpoint), map_location='cpu', strict=True)
    saved = torch.load(runner_checkpoint)  # weights_only=True, the default
    assert torch.equal(model.linear.weight, saved['state_dict']['linear.weight'])
    assert ckpt['meta']['epoch'] == 1 and ckpt['meta']['iter'] == 4
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)


def test_runner_resume_restores_counters_and_history(runner_checkpoint, tmp_path):
    runner = _toy_runner(tmp_path, max_epochs=2)
    runner.resume(str(runner_checkpoint))
    assert (runner.epoch, runner.iter) == (1, 4)
    saved = torch.load(runner_checkpoint)
    restored = runner.message_hub.get_scalar('train/loss').data[0]
    assert restored.tolist() == saved['message_hub']['log_scalars']['train/loss'].data[0].tolist()
    assert len(restored) == 4
    assert runner.optim_wrapper.state_dict()['state'][0]['step'] == saved['optimizer']['state'][0]['step']
    runner.train()  # and it goes on to the end
    assert (runner.epoch, runner.iter) == (2, 8)


class _CreatesFile:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


class _ReachesForGetattr:
    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    victim = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': _CreatesFile(victim)}, evil)
    with pytest.raises(pickle.UnpicklingError, match='Unsupported global'):
        load_checkpoint(_ToyModel(), str(evil), map_location='cpu')
    assert not victim.exists()
    # Sanity check that the file really would have run code.
    torch.load(evil, weights_only=False)
    assert victim.exists()


def test_allowed_getattr_answers_only_history_buffer_statistics(tmp_path):
    evil = tmp_path / 'getattr.pth'
    torch.save({'state_dict': {}, 'x': _ReachesForGetattr()}, evil)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(evil)


def test_package_exposes_version():
    assert mmdet_efficientvit.__version__
