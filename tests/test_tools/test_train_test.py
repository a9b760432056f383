"""tools/train.py, tools/test.py and the dist_*.sh launchers, run as a user runs them (subprocesses) on
tiny generated data: train + COCO evaluation, resume after SIGKILL, 2-process gloo training and
testing, the official checkpoint layout evaluating in the unchanged config, and the set-up errors."""
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmdet_efficientvit.datasets.demo_shapes import generate_demo_shapes

from mmdet_efficientvit.model_zoo import imagenet_checkpoint, resolve

from _data import (CONFIGS, REPO, free_port, mmdet2_meta, official_bias_idxs, run_tool,
                   tiny_config, tool_env, write_coco_split)

pytestmark = pytest.mark.slow

MAP_LINE = re.compile(r'coco/bbox_mAP: (-?\d+\.\d+)')


@pytest.fixture(scope='module')
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('shapes')
    generate_demo_shapes(str(root), num_train=16, num_val=4, img_size=(128, 96), seed=0)
    return root


def assert_ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, (out.stdout[-2000:] + out.stderr[-4000:])
    return out.stdout + out.stderr


def load_ckpt(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=False)


@pytest.fixture(scope='module')
def two_epoch_run(shapes, tmp_path_factory):
    """One uninterrupted 2-epoch training with validation at the end: (config, work_dir, log)."""
    root = tmp_path_factory.mktemp('run')
    cfg = tiny_config(root / 'tiny.py', shapes, max_epochs=2, val_interval=2)
    work = root / 'work'
    log = assert_ok(run_tool(['train.py', cfg, '--work-dir', work]))
    return cfg, work, log


def test_train_then_test_gives_coco_map(two_epoch_run, tmp_path):
    cfg, work, log = two_epoch_run
    assert MAP_LINE.search(log), log[-2000:]  # validation after training, computed by CocoMetric
    ckpt = work / 'epoch_2.pth'
    assert (work / 'last_checkpoint').read_text().strip() == str(ckpt)

    out_pkl = tmp_path / 'preds.pkl'
    log = assert_ok(run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / 'test', '--out', out_pkl,
                              '--show-dir', 'vis']))
    m = MAP_LINE.search(log)
    assert m and 0.0 <= float(m.group(1)) <= 1.0, log[-2000:]
    preds = pickle.loads(out_pkl.read_bytes())
    assert len(preds) == 4 and all('pred_instances' in p for p in preds)
    assert len(list((tmp_path / 'test').rglob('vis/*.jpg'))) == 4

    # --fuse folds BN into the convs: same detections up to float rounding
    fused_pkl = tmp_path / 'fused.pkl'
    log = assert_ok(run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / 'fused', '--out', fused_pkl,
                              '--fuse']))
    folded = re.search(r'--fuse: folded (\d+) of (\d+) BatchNorm layers', log)
    assert folded and int(folded.group(1)) == int(folded.group(2)) > 0, log[-2000:]
    fused = pickle.loads(fused_pkl.read_bytes())
    for a, b in zip(preds, fused, strict=True):
        sa, sb = a['pred_instances']['scores'], b['pred_instances']['scores']
        n = min(len(sa), len(sb), 10)
        torch.testing.assert_close(sa[:n], sb[:n], atol=1e-4, rtol=1e-4)


def _train_until_killed(cfg: Path, work: Path, kill_at_epoch: int, kill_at_iter: int) -> str:
    """Run train.py, SIGKILL it once the log shows iteration ``kill_at_iter`` of ``kill_at_epoch``."""
    proc = subprocess.Popen([sys.executable, str(REPO / 'tools' / 'train.py'), str(cfg), '--work-dir',
                             str(work)], cwd=REPO, env=tool_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    marker = re.compile(rf'Epoch\(train\)\s+\[{kill_at_epoch}\]\[\s*(\d+)/')
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            m = marker.search(line)
            if m and int(m.group(1)) >= kill_at_iter:
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, ''.join(lines)[-3000:]
    return ''.join(lines)


def test_resume_after_sigkill_matches_uninterrupted_run(two_epoch_run, tmp_path):
    """Kill -9 in the middle of epoch 2, resume with --resume: the run continues from epoch_1.pth with
    its counters, optimizer and scheduler state, and ends exactly where an uninterrupted run ends."""
    cfg, ref_work, _ = two_epoch_run
    work = tmp_path / 'killed'

    _train_until_killed(cfg, work, kill_at_epoch=2, kill_at_iter=3)
    assert not (work / 'epoch_2.pth').exists()
    assert (work / 'last_checkpoint').read_text().strip() == str(work / 'epoch_1.pth')
    first = load_ckpt(work / 'epoch_1.pth')
    assert (first['meta']['epoch'], first['meta']['iter']) == (1, 8)  # 16 images, batch 2

    log = assert_ok(run_tool(['train.py', cfg, '--work-dir', work, '--resume']))
    assert 'resumed epoch: 1, iter: 8' in log, log[-3000:]
    assert 'Epoch(train) [1]' not in log  # nothing of epoch 1 is redone

    ref, got = load_ckpt(ref_work / 'epoch_2.pth'), load_ckpt(work / 'epoch_2.pth')
    assert (got['meta']['epoch'], got['meta']['iter']) == (ref['meta']['epoch'], ref['meta']['iter'])
    assert (got['meta']['epoch'], got['meta']['iter']) == (2, 16)
    assert got['param_schedulers'] == ref['param_schedulers']
    assert got['optimizer']['param_groups'] == ref['optimizer']['param_groups']
    assert got['optimizer']['param_groups'][0]['lr'] == pytest.approx(1e-4)  # 1e-3 x 0.1 after epoch 1
    assert got['optimizer']['state'].keys() == ref['optimizer']['state'].keys()
    for i, state in ref['optimizer']['state'].items():
        assert float(got['optimizer']['state'][i]['step']) == float(state['step']) == 16
        torch.testing.assert_close(got['optimizer']['state'][i]['exp_avg'], state['exp_avg'])
        torch.testing.assert_close(got['optimizer']['state'][i]['exp_avg_sq'], state['exp_avg_sq'])
    for k, v in ref['state_dict'].items():
        torch.testing.assert_close(got['state_dict'][k], v, msg=k)


def test_distributed_train_and_test_two_processes(shapes, tmp_path):
    cfg = tiny_config(tmp_path / 'tiny.py', shapes, max_epochs=1, val_interval=10)
    work = tmp_path / 'work'
    log = assert_ok(run_tool(['dist_train.sh', cfg, 2, '--work-dir', work], PORT=str(free_port())))
    assert 'Distributed training: True' in log and 'GPU number: 2' in log  # mmengine's words for 2 ranks
    ckpt = load_ckpt(work / 'epoch_1.pth')
    assert ckpt['meta']['iter'] == 4  # 16 images / (2 processes x batch 2)
    log = assert_ok(run_tool(['dist_test.sh', cfg, work / 'epoch_1.pth', 2, '--work-dir', tmp_path / 'test'],
                             PORT=str(free_port())))
    assert MAP_LINE.search(log), log[-3000:]


def test_official_release_layout_evaluates_in_unchanged_config(tmp_path):
    """tools/test.py CONFIG retinanet_efficientvit_m4_fpn_1x_coco.pth: a checkpoint in the release's
    mmdet 2.x layout, the real M4 config (COCO at data/coco/, here two generated val images with the
    80 COCO classes), only the test resize shrunk to keep the CPU test short."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    write_coco_split(tmp_path / 'data' / 'coco', 'val2017', CocoDataset.METAINFO['classes'])
    cfg = Config.fromfile(str(CONFIGS / 'retinanet_evit_m4_fpn_1x_coco.py'))
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    state_dict = MODELS.build(cfg.model).state_dict()  # key layout checked in test_configs/test_coco_configs.py
    state_dict.update({k.replace('attention_biases', 'attention_bias_idxs'): official_bias_idxs(7)
                       for k in state_dict if k.endswith('attention_biases')})  # as released
    ckpt = tmp_path / 'retinanet_efficientvit_m4_fpn_1x_coco.pth'
    torch.save(dict(meta=mmdet2_meta(CocoDataset.METAINFO['classes']), state_dict=state_dict), ckpt)

    log = assert_ok(run_tool(['test.py', CONFIGS / 'retinanet_evit_m4_fpn_1x_coco.py', ckpt,
                              '--work-dir', tmp_path / 'work',
                              '--cfg-options', 'test_dataloader.dataset.pipeline.1.scale=(160,128)'],
                             cwd=tmp_path))
    assert MAP_LINE.search(log), log[-3000:]
    assert 'missing keys' not in log and 'unexpected key' not in log


# Runs a tool (argv[2:]) with torch.load counting its reads of the checkpoint argv[1].
COUNT_READS = """
import runpy, sys, torch
path, reads, load = sys.argv[1], [], torch.load
def counting_load(f, *args, **kwargs):
    reads.append(str(f))
    return load(f, *args, **kwargs)
torch.load = counting_load
sys.argv = sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print(f'reads of the checkpoint: {reads.count(path)}')
"""


def test_tools_read_the_checkpoint_once(shapes, tmp_path):
    """tools/test.py (evaluating, and explaining a checkpoint that does not fit), tools/demo.py and
    the end-to-end export read the checkpoint file once: the safe read's dict is what gets loaded."""
    from mmdet_efficientvit.models.builders import build_detector
    cfg = tiny_config(tmp_path / 'tiny.py', shapes)
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=build_detector(str(cfg)).state_dict(), meta=dict(epoch=1)), ckpt)
    m1 = tmp_path / 'm1.py'
    m1.write_text(f"_base_ = {str(cfg)!r}\n"
                  "model = dict(backbone=dict(arch='m1'), neck=dict(in_channels=[128, 144, 192]))\n")
    image = sorted((shapes / 'val').glob('*.jpg'))[0]
    runs = {'test.py': ['test.py', cfg, ckpt, '--work-dir', tmp_path / 'test'],
            'test.py, mismatch': ['test.py', m1, ckpt, '--work-dir', tmp_path / 'mismatch'],
            'demo.py': ['demo.py', image, cfg, ckpt, '--out-dir', tmp_path / 'demo'],
            'export_onnx.py': ['deployment/export_onnx.py', cfg, '--checkpoint', ckpt, '--end2end',
                               '--shape', '64x96', '--check-sizes', '64x96', '--out', tmp_path / 'e2e.onnx']}
    for name, args in runs.items():
        out = subprocess.run([sys.executable, '-c', COUNT_READS, str(ckpt), str(REPO / 'tools' / args[0]),
                              *map(str, args[1:])], cwd=tmp_path, env=tool_env(),
                             capture_output=True, text=True, timeout=300)
        if name.endswith('mismatch'):
            assert out.returncode == 1 and 'does not fit the model of' in out.stderr, out.stderr[-3000:]
        else:
            assert_ok(out)
        assert 'reads of the checkpoint: 1' in out.stdout, (name, out.stdout[-2000:])


def test_missing_coco_is_one_short_message(tmp_path):
    start = time.time()
    for args in (['train.py', CONFIGS / 'retinanet_evit_m4_fpn_1x_coco.py'],
                 ['test.py', CONFIGS / 'mask_rcnn_evit_m4_fpn_1x_coco.py', __file__],
                 ['train.py', CONFIGS / 'rtmdet_evit_m0_8xb32-300e_coco.py']):
        out = run_tool(args + ['--work-dir', tmp_path / 'w'], cwd=tmp_path)
        assert out.returncode == 1
        assert 'Traceback' not in out.stderr + out.stdout
        err = out.stderr[out.stderr.index('error: '):]  # after import-time library warnings
        assert 'data/coco/annotations/instances_' in err and "'data/coco/'" in err
        assert 'ln -s /path/to/coco data/coco' in err and '--cfg-options' in err
        assert 'dataloader.dataset.data_root=' in err
        assert len(err.splitlines()) <= 5, err
    assert time.time() - start < 120


def test_no_network_pretrained_is_one_short_message(shapes, tmp_path):
    url = resolve(imagenet_checkpoint('m0'))
    cfg = tiny_config(tmp_path / 'tiny.py', shapes,
                      backbone_init_cfg=dict(type='Pretrained', checkpoint=imagenet_checkpoint('m0')))
    # a proxy that refuses connections stands in for "no network", and an empty torch hub cache
    out = run_tool(['train.py', cfg, '--work-dir', tmp_path / 'w'], TORCH_HOME=str(tmp_path / 'hub'),
                   https_proxy='http://127.0.0.1:9', HTTPS_PROXY='http://127.0.0.1:9')
    assert out.returncode == 1
    assert 'Traceback' not in out.stderr + out.stdout
    err = out.stderr[out.stderr.index('error: '):].strip()
    assert url in err and "checkpoint='/path/to/efficientvit_m0.pth'" in err, err
    assert len(err.splitlines()) <= 3, err


def test_slurm_train_launches_train_py_per_task(tmp_path):
    """No cluster here: a stand-in ``srun`` records its arguments; the script must hand train.py the
    config, the work dir, the slurm launcher and the extra options, with Slurm's resources."""
    fake = tmp_path / 'bin' / 'srun'
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    fake.chmod(0o755)
    log = tmp_path / 'srun.log'
    out = run_tool(['slurm_train.sh', 'gpu', 'job', 'cfg.py', 'work', '--amp'], GPUS='16',
                   PATH=f'{fake.parent}{os.pathsep}{os.environ["PATH"]}', SRUN_LOG=str(log))
    assert out.returncode == 0, out.stderr
    args = log.read_text().splitlines()
    assert args[:2] == ['-p', 'gpu'] and '--job-name=job' in args and '--ntasks=16' in args
    assert '--gres=gpu:8' in args and '--ntasks-per-node=8' in args
    i = args.index(sys.executable)
    assert args[i + 1:] == ['-u', str(REPO / 'tools' / 'train.py'), 'cfg.py', '--work-dir=work',
                            '--launcher=slurm', '--amp']
