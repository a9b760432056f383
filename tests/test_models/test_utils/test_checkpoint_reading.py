"""Safe checkpoint reading (``models/utils/checkpoint/reading.py``): mmengine Runner checkpoints load
with ``weights_only=True`` thanks to the allow-list, resume works, and a pickle that runs code is refused."""
import pickle
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

import mmdet_efficientvit  # noqa: F401  (installs the allow-list)


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
