"""mmdeploy 1.3.1 on current PyTorch with the opt-in fix ``mmdet_efficientvit.compat.mmdeploy``.

mmdeploy is optional: it is installed with pip (``--no-deps`` plus its small imports, as
docs/deployment.md says) into a cached folder outside the venv and used in subprocesses that put it on
``PYTHONPATH``; where pip cannot install it those tests are skipped with pip's reason. References are
independent of the fix: mmdeploy's failure without it, our own ``export_onnx.py --end2end`` graph, and
mmcv's compiled RoIAlign. The import errors (mmdeploy missing, another release) need no mmdeploy.
"""
import importlib
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Sequence

import pytest

from _data import CONFIGS, REPO, tool_env, write_distributions

from mmdet_efficientvit.compat import UnsupportedStackError
from mmdet_efficientvit.datasets.demo_shapes import generate_demo_shapes
from mmdet_efficientvit.version import MMDEPLOY_DEPS, MMDEPLOY_VERSION

FIX = 'mmdet_efficientvit.compat.mmdeploy'
DEMO_CONFIG = CONFIGS / 'demo' / 'retinanet_evit_demo_shapes.py'
DETECTION_DEPLOY = CONFIGS / 'deploy' / 'detection_onnxruntime_dynamic.py'
INSTANCE_SEG_DEPLOY = CONFIGS / 'deploy' / 'instance-seg_onnxruntime_dynamic.py'
CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'mmdet-efficientvit'


# --------------------------------------------------------------------------- without mmdeploy
def _import_fix(monkeypatch, mmdeploy_module):
    monkeypatch.delitem(sys.modules, FIX, raising=False)
    monkeypatch.setitem(sys.modules, 'mmdeploy', mmdeploy_module)
    with pytest.raises(UnsupportedStackError) as err:
        importlib.import_module(FIX)
    chained = err.value.__cause__ or (None if err.value.__suppress_context__ else err.value.__context__)
    assert chained is None  # one message, no chained traceback
    message = str(err.value)
    assert '\n' not in message and f'pip install --no-deps mmdeploy=={MMDEPLOY_VERSION}' in message
    return message


def test_fix_without_mmdeploy_is_one_line(monkeypatch):
    message = _import_fix(monkeypatch, None)  # None in sys.modules: ``import mmdeploy`` fails
    assert message.startswith(f'{FIX} needs mmdeploy=={MMDEPLOY_VERSION}, which is not importable')


def test_fix_with_another_mmdeploy_release_is_one_line(monkeypatch):
    message = _import_fix(monkeypatch, types.SimpleNamespace(__version__='1.2.0'))
    assert f'fixes mmdeploy=={MMDEPLOY_VERSION}, found mmdeploy==1.2.0' in message


# --------------------------------------------------------------------------- with mmdeploy
@pytest.fixture(scope='module')
def mmdeploy_path() -> Path:
    """mmdeploy and its small imports, installed once into a cache folder (reused by later runs)."""
    target = CACHE / f'mmdeploy-{MMDEPLOY_VERSION}-py{sys.version_info[0]}{sys.version_info[1]}'
    if (target / '.complete').is_file():
        return target
    partial = target.with_name(f'{target.name}.partial-{os.getpid()}')
    shutil.rmtree(partial, ignore_errors=True)
    for what in (['--no-deps', f'mmdeploy=={MMDEPLOY_VERSION}'], list(MMDEPLOY_DEPS)):
        proc = subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet',
                               '--disable-pip-version-check', '--target', str(partial), *what],
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            reason = (proc.stderr.strip().splitlines() or ['no output'])[-1]
            pytest.skip(f'pip cannot install {" ".join(what)} here: {reason}')
    (partial / '.complete').touch()
    try:
        partial.rename(target)
    except OSError:  # another run finished first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def run_python(mmdeploy_path: Path, *argv: str, timeout: float = 600, first: Sequence[Path] = ()):
    """``python *argv`` with mmdeploy importable (``first`` before it on the path), in the repository."""
    env = tool_env()
    env['PYTHONPATH'] = os.pathsep.join([*map(str, first), str(mmdeploy_path), env['PYTHONPATH']])
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


@pytest.fixture(scope='module')
def demo_images(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('mmdeploy_shapes')
    return generate_demo_shapes(str(root / 'shapes'), num_train=1, num_val=3, img_size=256,
                                seed=5)['val_img_dir']


@pytest.mark.slow
def test_importing_the_package_patches_nothing(mmdeploy_path):
    """``import mmdet_efficientvit`` neither imports mmdeploy nor registers anything in it; the fix
    registers its two rewrites and leaves torch and mmcv as they are outside mmdeploy's export."""
    code = f"""
import sys, torch
export = torch.onnx.export
import mmdet_efficientvit
assert 'mmdeploy' not in sys.modules and '{FIX}' not in sys.modules
import mmcv.ops, mmdeploy.apis
from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER
def ours():
    return sorted(name for registry in (FUNCTION_REWRITER, SYMBOLIC_REWRITER)
                  for name, records in registry._registry._rewrite_records.items() for record in records
                  if record['_object'].__module__.startswith('mmdet_efficientvit'))
symbolic = mmcv.ops.roi_align.__self__.symbolic
print('before', ours())
import {FIX}
assert torch.onnx.export is export and mmcv.ops.roi_align.__self__.symbolic is symbolic
print('after', ours())
"""
    lines = ok(run_python(mmdeploy_path, '-c', code)).splitlines()
    assert lines[-2:] == ['before []', "after ['mmcv.ops.roi_align.__self__', 'torch.onnx.export']"]


@pytest.mark.slow
def test_fix_steps_aside_for_onedl_mmdeploy(mmdeploy_path, tmp_path):
    """onedl-mmdeploy >= 1.5 makes both changes itself (docs/setup.md): with its distribution installed,
    importing the fix registers nothing. (Its Linux wheels are not on PyPI: mmdeploy 1.3.1's code
    stands in under an onedl-mmdeploy 1.5.2 record, which is what the fix decides on.)"""
    site = write_distributions(tmp_path / 'site', {'onedl-mmdeploy': '1.5.2'})
    code = f"""
import {FIX} as fix
from mmdeploy.core import FUNCTION_REWRITER, SYMBOLIC_REWRITER
print(fix.FIX_NEEDED, [record for registry in (FUNCTION_REWRITER, SYMBOLIC_REWRITER)
                       for records in registry._registry._rewrite_records.values() for record in records
                       if record['_object'].__module__.startswith('mmdet_efficientvit')])
"""
    assert ok(run_python(mmdeploy_path, '-c', code, first=[site])).splitlines()[-1] == 'False []'


@pytest.mark.slow
def test_without_the_fix_mmdeploy_fails(mmdeploy_path, demo_images, tmp_path):
    """mmdeploy as released, on our deploy config without its import of the fix: torch's default
    (dynamo) exporter fails for every model. What the fix is for, so that the tests below can fail."""
    code = """
import os, sys
from mmengine.config import Config
from mmdeploy.apis import torch2onnx
deploy = Config.fromfile(sys.argv[1], import_custom_modules=False)
deploy.pop('custom_imports')
image = os.path.join(sys.argv[3], sorted(os.listdir(sys.argv[3]))[0])
try:
    torch2onnx(image, sys.argv[4], 'end2end.onnx', deploy, sys.argv[2], None, device='cpu')
finally:
    assert '{fix}' not in sys.modules
""".format(fix=FIX)
    proc = run_python(mmdeploy_path, '-c', code, str(DETECTION_DEPLOY), str(DEMO_CONFIG),
                      demo_images, str(tmp_path))
    assert proc.returncode != 0
    assert "No module named 'onnxscript'" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.slow
def test_mmdeploy_export_equals_ours(mmdeploy_path, demo_images, tmp_path):
    """Our RetinaNet-M0 (demo config, random check weights) through mmdeploy's torch2onnx with the
    fix, by ``check_mmdeploy.py``: the same detections as our --end2end graph (same label and
    score, the same box) on every image where ours has those of PyTorch's predict, up to the zero-size boxes
    that mmdeploy keeps (the tool fails otherwise)."""
    out = ok(run_python(mmdeploy_path, str(REPO / 'tools/deployment/check_mmdeploy.py'),
                        str(DEMO_CONFIG), '--images', demo_images, '--num', '3',
                        '--work-dir', str(tmp_path / 'work')))
    graphs = re.search(r'on 3 images .*: (\d+)/3 with the same detections .*; (\d+) of (\d+) '
                       r'detections paired \(mmdeploy (\d+)\)', out)
    stable = re.search(r'predict vs export_onnx.py --end2end: (\d+)/3 images .* On those \d+, '
                       r'mmdeploy has the same detections on (\d+), and on (\d+) more .* Paired '
                       r'scores differ by <= (\S+), boxes by <= (\S+) px', out)
    assert graphs and stable, out[-3000:]
    same, matched, ref, got = map(int, graphs.groups())
    assert ref == got == 3 * 50 and matched >= 2 * 50, out[-3000:]  # NMS had work: 50 per image
    # where our graph equals PyTorch's predict (not decided by float ties), mmdeploy's does too
    checked, equal, sized = map(int, stable.groups()[:3])
    assert checked >= 2 and equal + sized == checked and same >= equal, out[-3000:]
    assert float(stable.group(4)) < 1e-5 and float(stable.group(5)) < 1e-3, out[-3000:]


ROI_ALIGN = """
import sys, numpy as np, torch, onnxruntime
import {fix} as fix
from mmcv.ops import RoIAlign
from mmdeploy.apis.onnx import export
from mmdeploy.core import SYMBOLIC_REWRITER

torch.manual_seed(0)
feats = torch.randn(2, 8, 24, 40)
xy = torch.rand(12, 2) * torch.tensor([130., 70.])
rois = torch.cat([torch.arange(12).remainder(2)[:, None].float(), xy, xy + 4 + torch.rand(12, 2) * 60], 1)

def export_and_run(aligned, opset):
    layer = RoIAlign(7, spatial_scale=0.25, sampling_ratio=0, aligned=aligned).eval()
    prefix = f'{{sys.argv[1]}}/roi_align_{{aligned}}_{{opset}}'
    export(layer, (feats, rois), prefix, backend='onnxruntime', input_names=['feats', 'rois'],
           output_names=['out'], opset_version=opset,
           dynamic_axes=dict(rois={{0: 'n'}}, out={{0: 'n'}}))
    got, = onnxruntime.InferenceSession(prefix + '.onnx').run(None, dict(feats=feats.numpy(),
                                                                         rois=rois.numpy()))
    return float(np.abs(got - layer(feats, rois).numpy()).max())

layers = [RoIAlign(7, spatial_scale=0.25, sampling_ratio=0, aligned=a) for a in (True, False)]
print('aligned vs not', float((layers[0](feats, rois) - layers[1](feats, rois)).abs().max()))
export_before = torch.onnx.export
for aligned in (True, False):
    for opset in (11, 16):
        print('diff', aligned, opset, export_and_run(aligned, opset))
assert torch.onnx.export is export_before  # mmdeploy undid the rewrite after each export
SYMBOLIC_REWRITER._registry.remove_record(fix.roi_align__onnx)  # mmdeploy's own symbolic
try:
    export_and_run(True, 11)
except ImportError as err:
    print('without the fix:', err)
"""


@pytest.mark.slow
def test_roi_align_symbolic_matches_mmcv(mmdeploy_path, tmp_path):
    """RoIAlign through mmdeploy's export API with the fixed symbolic: onnxruntime's ``RoiAlign``
    equals mmcv's compiled op, aligned or not, in both opset branches (11: shifted boxes, 16:
    ``coordinate_transformation_mode``); mmdeploy's own symbolic fails on ``_cast_Long``."""
    out = ok(run_python(mmdeploy_path, '-c', ROI_ALIGN.format(fix=FIX), str(tmp_path)))
    diffs = re.findall(r'^diff (True|False) (\d+) (\S+)$', out, re.M)
    assert len(diffs) == 4, out
    for aligned, opset, diff in diffs:
        assert float(diff) < 1e-5, (aligned, opset, diff)
    assert float(re.search(r'^aligned vs not (\S+)$', out, re.M).group(1)) > 1e-2  # can fail
    assert re.search(r"without the fix: cannot import name '_cast_Long'", out), out


MASK_RCNN = """
import os, sys, numpy as np, onnx, onnxruntime
from mmengine.config import Config
from mmdeploy.apis import torch2onnx
deploy_cfg, model_cfg, images, work_dir = sys.argv[1:]
deploy = Config.fromfile(deploy_cfg)
deploy.onnx_config.input_shape = [320, 256]  # W, H: a small traced input
image = os.path.join(images, sorted(os.listdir(images))[0])
torch2onnx(image, work_dir, 'mask_rcnn.onnx', deploy, model_cfg, None, device='cpu')
path = os.path.join(work_dir, 'mask_rcnn.onnx')
print('ops', ' '.join(sorted({node.op_type for node in onnx.load(path).graph.node})))
x = np.random.default_rng(0).standard_normal((1, 3, 288, 352)).astype(np.float32)
outputs = onnxruntime.InferenceSession(path).run(None, dict(input=x))
for name, out in zip(('dets', 'labels', 'masks'), outputs):
    print(name, *out.shape)
"""


@pytest.mark.slow
def test_mask_rcnn_exports_through_mmdeploy(mmdeploy_path, demo_images, tmp_path):
    """Our Mask R-CNN-M0 config through mmdeploy's torch2onnx with the fix (random weights, traced
    at 256x320): one graph with ONNX ``RoiAlign`` that onnxruntime runs at another size, with
    mmdeploy's outputs: dets, labels and per-box 28x28 masks."""
    out = ok(run_python(mmdeploy_path, '-c', MASK_RCNN, str(INSTANCE_SEG_DEPLOY),
                        str(CONFIGS / 'mask_rcnn_evit_m0_fpn_1x_coco.py'), demo_images,
                        str(tmp_path)))
    ops = re.search(r'^ops (.*)$', out, re.M).group(1).split()
    assert 'RoiAlign' in ops and 'NonMaxSuppression' in ops, ops
    shapes = {line.split()[0]: tuple(map(int, line.split()[1:])) for line in out.splitlines()
              if line.split()[:1] in (['dets'], ['labels'], ['masks'])}
    (n, k, five), (n2, k2), (n3, k3, h, w) = shapes['dets'], shapes['labels'], shapes['masks']
    assert n == n2 == n3 == 1 and k == k2 == k3 and five == 5 and (h, w) == (28, 28), shapes
