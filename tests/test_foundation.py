"""The stack works: compiled mmcv ops, registration, the import guard, and safe checkpoint loading."""
import os
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
from mmdet_efficientvit.version import STACKS

from _data import REPO, write_distributions


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


# The two supported stacks as `make setup` and `STACK=onedl make setup` install them.
UPSTREAM = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'mmdet': '3.3.0'}
ONEDL = {'onedl-mmengine': '0.10.12', 'onedl-mmcv': '2.3.6', 'onedl-mmdetection': '3.5.1'}


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Make ``importlib.metadata`` see exactly the given distributions (the modules stay imported)."""
    def install(dists: dict) -> None:
        monkeypatch.setattr(sys, 'path', [str(write_distributions(tmp_path / 'site', dists))])
    return install


def _refusal() -> str:
    """check_environment's refusal: one line naming both stacks and the commands that build them."""
    with pytest.raises(compat.UnsupportedStackError) as err:
        compat.check_environment()
    message = str(err.value)
    assert '\n' not in message
    assert 'upstream OpenMMLab (mmengine>=0.10.0,<0.11.0, mmcv>=2.0.0,<2.2.0, mmdet>=3.0.0,<3.4.0; ' \
           '`make setup`)' in message
    assert 'OneDL (onedl-mmengine>=0.10.8,<0.11.0, onedl-mmcv>=2.3.0,<2.4.0, ' \
           'onedl-mmdetection>=3.5.0,<3.6.0; `STACK=onedl make setup`)' in message
    return message


@pytest.mark.parametrize('dists', [UPSTREAM, ONEDL, {**UPSTREAM, 'mmcv-lite': '2.1.0', 'mmcv': None}],
                         ids=['upstream', 'onedl', 'upstream-mmcv-lite'])
def test_import_guard_accepts_both_stacks(installed, dists):
    installed({name: version for name, version in dists.items() if version})
    compat.check_environment()  # mmcv._ext is this environment's, already imported


@pytest.mark.parametrize('dists, mixed', [
    ({**UPSTREAM, 'mmcv': None, 'onedl-mmcv': '2.3.6'},  # upstream mmdet with onedl-mmcv
     'mixed MMDetection stack: mmengine==0.10.7 (upstream OpenMMLab), onedl-mmcv==2.3.6 (OneDL), '
     'mmdet==3.3.0 (upstream OpenMMLab).'),
    ({**ONEDL, 'onedl-mmcv': None, 'mmcv': '2.1.0'},  # onedl-mmdetection with upstream mmcv
     'mixed MMDetection stack: onedl-mmengine==0.10.12 (OneDL), mmcv==2.1.0 (upstream OpenMMLab), '
     'onedl-mmdetection==3.5.1 (OneDL).'),
    ({**ONEDL, 'onedl-mmcv': None, 'mmcv-full': '1.7.2'},  # ... with an mmcv that is neither
     '`mmcv` comes from mmcv-full, none of the supported distributions (mmcv, mmcv-lite, onedl-mmcv).'),
    ({**ONEDL, 'mmcv': '2.1.0'},  # `pip install onedl-mmcv` does not remove mmcv: the same module twice
     'mmcv==2.1.0 and onedl-mmcv==2.3.6 are installed together, and each writes its `mmcv` module over '
     'the other: keep one stack per environment.'),
    ({**ONEDL, 'onedl-mmdetection': None},
     'mmdet-efficientvit needs `mmdet` (mmdet, onedl-mmdetection), which is not installed.'),
], ids=['upstream-mmdet-onedl-mmcv', 'onedl-mmdet-upstream-mmcv', 'onedl-mmdet-mmcv-full',
        'both-mmcvs', 'no-mmdet'])
def test_import_guard_refuses_a_mixed_stack(installed, dists, mixed):
    installed({name: version for name, version in dists.items() if version})
    assert _refusal().startswith(mixed + ' mmdet-efficientvit supports two MMDetection stacks: ')


OUT_OF_RANGE = [('mmdet', '2.28.2', UPSTREAM), ('mmdet', '3.4.0', UPSTREAM), ('mmcv', '2.2.0', UPSTREAM),
                ('mmengine', '0.9.1', UPSTREAM), ('onedl-mmdetection', '3.4.7', ONEDL),
                ('onedl-mmdetection', '3.6.0', ONEDL), ('onedl-mmcv', '2.4.0', ONEDL),
                ('onedl-mmengine', '0.11.0', ONEDL)]


@pytest.mark.parametrize('name, version, stack', OUT_OF_RANGE,
                         ids=[f'{name}=={version}' for name, version, _ in OUT_OF_RANGE])
def test_import_guard_names_unsupported_version(installed, name, version, stack):
    installed({**stack, name: version})
    low, high = next((p.low, p.high) for s in STACKS.values() for p in s.packages.values()
                     if name in p.distributions)
    label = 'OneDL' if stack is ONEDL else 'upstream OpenMMLab'
    assert _refusal().startswith(f'mmdet-efficientvit supports {name}>={low},<{high} on the {label} '
                                 f'stack, found {name}=={version}. ')


@pytest.mark.parametrize('stack', [UPSTREAM, ONEDL], ids=['upstream', 'onedl'])
def test_import_guard_names_missing_compiled_ops(installed, monkeypatch, stack):
    installed(stack)
    monkeypatch.setitem(sys.modules, 'mmcv._ext', None)  # what an mmcv built without ops looks like
    mmcv, = (f'{name}=={version}' for name, version in stack.items() if 'mmcv' in name)
    message = _refusal()
    assert message.startswith(f'{mmcv} is installed without its compiled ops (mmcv._ext is missing: ')
    assert 'pip without --no-build-isolation' in message


@pytest.mark.slow
def test_import_guard_on_fresh_import_without_ops():
    code = ("import sys; sys.modules['mmcv._ext'] = None\n"
            'import mmdet_efficientvit')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'compiled ops' in proc.stderr and 'make setup' in proc.stderr


@pytest.mark.slow
def test_fresh_import_with_both_stacks_mmcv_is_one_line(tmp_path):
    """`pip install` of the other stack's mmcv into a working environment (pip keeps both, as their
    distribution names differ): the import stops with one line naming both."""
    ours = 'onedl-mmcv' if compat._distribution_version('onedl-mmcv') else 'mmcv'
    other = {'mmcv': {'onedl-mmcv': '2.3.6'}, 'onedl-mmcv': {'mmcv': '2.1.0'}}[ours]
    site = write_distributions(tmp_path / 'site', other)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(site), str(REPO)])}
    proc = subprocess.run([sys.executable, '-c', 'import mmdet_efficientvit'], capture_output=True,
                          text=True, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('mmdet_efficientvit.compat.UnsupportedStackError: ')
    pair = sorted([f'{ours}=={compat._distribution_version(ours)}',
                   *(f'{n}=={v}' for n, v in other.items())])
    assert f'{pair[0]} and {pair[1]} are installed together' in last
    assert '`make setup`' in last and '`STACK=onedl make setup`' in last


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
