"""What a user gets from the package: the shipped configs and tools by function, by
``mmdet_efficientvit::`` name and by the ``mmdet-efficientvit`` command, in this checkout and from a
non-editable wheel installed into a fresh venv (with the torch-free runtime module beside the package)."""
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from mmengine.config import Config

from mmdet_efficientvit import commands, resources
from mmdet_efficientvit.datasets.demo_shapes import generate_demo_shapes

from _data import CONFIGS, REPO

DEMO = 'demo/retinanet_evit_demo_shapes.py'


def test_shipped_configs_and_tools_in_the_checkout():
    assert Path(resources.configs_dir()).resolve() == CONFIGS
    assert Path(resources.tools_dir()).resolve() == REPO / 'tools'
    for path in CONFIGS.rglob('*.py'):
        rel = path.relative_to(CONFIGS).as_posix()
        assert Path(resources.config_path(rel)).resolve() == path
        assert resources.config_path(f'mmdet_efficientvit::{rel[:-3]}') == resources.config_path(rel)
    with pytest.raises(FileNotFoundError, match="no shipped config 'retinanet_evit_m9'"):
        resources.config_path('retinanet_evit_m9')
    cfg = resources.load_config('mmdet_efficientvit::retinanet_evit_m0_fpn_1x_coco.py')
    assert cfg.model.backbone.arch == 'm0'


def test_base_config_by_package_name(tmp_path):
    """``_base_ = 'mmdet_efficientvit::<folder>/<config>'`` resolves through mmengine (here in the
    editable install; the wheel test below repeats it with an installed wheel)."""
    user = tmp_path / 'user.py'
    user.write_text(f"_base_ = 'mmdet_efficientvit::{DEMO}'\nmodel = dict(backbone=dict(arch='m1'))\n")
    cfg = Config.fromfile(str(user))
    assert cfg.model.backbone.arch == 'm1' and cfg.model.neck.type == 'EfficientViTFPN'
    assert cfg.train_dataloader.dataset.ann_file == 'train.json'


def test_command_names_the_tools(capsys):
    for script in commands.COMMANDS.values():
        assert (REPO / 'tools' / script).is_file(), script
    with pytest.raises(SystemExit) as exit_:
        commands.main(['trian'])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and 'train' in err and 'export-onnx' in err


def test_package_loads_no_file_by_path():
    """Imports point down: no module of the package loads a file (a tool) by path; what it shares
    with a tool is a module it imports (the ONNX runtime is ``mmdet_efficientvit_runtime``)."""
    by_path = ('spec_from_file_location', 'SourceFileLoader', 'exec_module')
    found = [f'{path.relative_to(REPO)}: {name}' for path in (REPO / 'mmdet_efficientvit').rglob('*.py')
             if '.mim' not in path.parts for name in by_path if name in path.read_text()]
    assert not found, found


def _run(cmd, **kwargs) -> str:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    assert out.returncode == 0, f'{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}'
    return out.stdout + out.stderr


@pytest.mark.slow
def test_wheel_ships_configs_and_tools(tmp_path):
    """Build a wheel from a clean copy of the checkout, install it (no deps) into a fresh venv that
    reuses this environment's libraries, then from outside the repository: find configs and tools,
    resolve ``mmdet_efficientvit::`` names (mmengine's get_config and ``_base_``), and train two
    iterations with the console script."""
    src = tmp_path / 'src'
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split('\0')
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    _run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', src,
          '-w', tmp_path / 'dist'])
    wheel, = (tmp_path / 'dist').glob('mmdet_efficientvit-*.whl')
    assert not (src / 'mmdet_efficientvit' / '.mim').exists()  # copied into the build dir only

    venv = tmp_path / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv])
    python = venv / 'bin' / 'python'
    _run([sys.executable, '-m', 'pip', '--python', python, 'install', '-q', '--no-deps', wheel])
    # The built stack (torch, mmcv, ...) through a .pth file, appended after the venv's own packages;
    # this environment's editable copy of the package stays out (its finder is a .pth of that
    # environment, which Python does not run for a path added this way).
    site = Path(_run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])']).strip())
    stack = {sysconfig.get_paths()['purelib'], sysconfig.get_paths()['platlib']}
    (site / 'stack.pth').write_text('\n'.join(sorted(stack)) + '\n')

    user = tmp_path / 'user'
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['OMP_NUM_THREADS'] = '1'
    probe = (
        'import mmdet_efficientvit\n'
        'from mmdet_efficientvit.resources import config_path, tools_dir, load_config\n'
        'from mmengine.config import Config\n'
        'from mmengine.hub import get_config\n'
        'import mmdet_efficientvit_runtime\n'
        'print("package", mmdet_efficientvit.__file__)\n'
        'print("runtime", mmdet_efficientvit_runtime.__file__)\n'
        'print("config", config_path("retinanet_evit_m4_fpn_1x_coco.py"))\n'
        'print("tools", tools_dir())\n'
        'print("flat", load_config("mmdet_efficientvit::retinanet_evit_m4_fpn_1x_coco.py").filename)\n'
        f'print("hub", get_config("mmdet_efficientvit::{DEMO}").filename)\n'
        'print("base", Config.fromfile("user_base.py").model.backbone.arch)\n')
    (user / 'user_base.py').write_text(
        f"_base_ = 'mmdet_efficientvit::{DEMO}'\nmodel = dict(backbone=dict(arch='m2'))\n")
    lines = dict(line.split(' ', 1) for line in
                 _run([python, '-c', probe], cwd=user, env=env).splitlines() if ' ' in line)
    installed = site / 'mmdet_efficientvit'
    assert lines['package'] == str(installed / '__init__.py')
    assert lines['runtime'] == str(site / 'mmdet_efficientvit_runtime.py')  # the wheel's top-level module
    # the ONNX tool, a shim in the shipped tools, runs the installed runtime module
    usage = _run([venv / 'bin' / 'mmdet-efficientvit', 'onnx-inference', '--help'], cwd=user, env=env)
    assert '--runtime' in usage and 'without PyTorch' in usage
    mim = installed / '.mim'
    assert lines['config'] == str(mim / 'configs' / 'retinanet_evit_m4_fpn_1x_coco.py')
    assert lines['tools'] == str(mim / 'tools') and (mim / 'tools' / 'train.py').is_file()
    assert lines['flat'] == lines['config']
    assert lines['hub'] == str(mim / 'configs' / DEMO)
    assert lines['base'] == 'm2'

    # Two training iterations (4 images, batch 2) and the validation after them, by the console script.
    data = user / 'data'
    generate_demo_shapes(str(data), num_train=4, num_val=2, img_size=(96, 96), seed=0)
    (user / 'tiny.py').write_text(f"""
_base_ = 'mmdet_efficientvit::{DEMO}'
data_root = {str(data) + '/'!r}
model = dict(test_cfg=dict(score_thr=0.0))  # untrained: keep every box so COCO eval has input
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
""")
    log = _run([venv / 'bin' / 'mmdet-efficientvit', 'train', 'tiny.py', '--work-dir', 'work'],
               cwd=user, env=env, timeout=600)
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    assert 'coco/bbox_mAP: ' in log, log[-3000:]
    assert 'Failed to search registry' not in log  # the mmdet_efficientvit scope has its registries
    assert (user / 'work' / 'epoch_1.pth').is_file()
    for part in ('mmdet_efficientvit', 'configs', 'tools'):  # nothing came from the checkout
        assert str(REPO / part) not in log, part
