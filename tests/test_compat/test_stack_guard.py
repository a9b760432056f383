"""The import guard (``compat.check_environment``): both supported stacks pass, a mixed or out-of-range
stack, missing compiled ops or an old torch is refused in one line naming the fix."""
import os
import re
import subprocess
import sys

import pytest
import torch

from mmdet_efficientvit import compat
from mmdet_efficientvit.version import STACKS

from _data import REPO, write_distributions


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
