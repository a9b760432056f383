"""Bad input to tools/train.py and tools/test.py, run as a user runs them: one short message naming
the file, the problem and the fix (never a traceback, never a flood, never advice to load unsafely)."""
import io
import re
import subprocess
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdet_efficientvit.errors import CheckpointError
from mmdet_efficientvit.models import EfficientViT
from mmdet_efficientvit.models.utils import load_backbone_state_dict, read_checkpoint

from _data import CONFIGS, run_tool, tiny_config, write_coco_split

CLASSES = ('rectangle', 'ellipse', 'triangle', 'star')
NOT_READABLE = 'is not a readable checkpoint: not a PyTorch or safetensors file, or a truncated one'
UNSAFE_ADVICE = re.compile(r'weights_only.{0,20}(False|off)|trust the source', re.I)


class _RunsCode:
    def __reduce__(self):
        return (print, ('this ran while loading',))


def _bad_checkpoints(root: Path) -> dict:
    """name -> (path, words the message must contain)."""
    root.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, buf)
    files = {
        'garbage': (b'this is not a checkpoint\n' * 20, NOT_READABLE),
        'empty': (b'', f'{NOT_READABLE} (0 bytes, an empty file)'),
        'truncated': (buf.getvalue()[:len(buf.getvalue()) // 2], NOT_READABLE),
    }
    evil = io.BytesIO()
    torch.save({'state_dict': {}, 'meta': _RunsCode()}, evil)
    files['evil'] = (evil.getvalue(), 'contains Python objects that safe loading refuses (global print)')
    out = {}
    for name, (data, words) in files.items():
        (root / f'{name}.pth').write_bytes(data)
        out[name] = (root / f'{name}.pth', words)
    return out


def test_unreadable_checkpoint_messages_name_the_problem_not_unsafe_loading(tmp_path):
    for name, (path, words) in _bad_checkpoints(tmp_path).items():
        for read in (read_checkpoint, load_backbone_state_dict):  # tools and the backbone's init_cfg
            with pytest.raises(CheckpointError) as info:
                read(str(path))
            message = str(info.value)
            assert message.startswith(f'{path} ') and words in message, (name, message)
            assert not UNSAFE_ADVICE.search(message) and '\n' not in message, (name, message)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('tiny')
    for split in ('train', 'val'):
        ann = write_coco_split(root, split, CLASSES, num_images=2)
        ann.rename(root / f'{split}.json')
    return tiny_config(root / 'tiny.py', root)


def _short_error(out: subprocess.CompletedProcess, max_lines: int = 1) -> str:
    assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-3000:]
    assert 'Traceback' not in out.stdout + out.stderr, out.stderr[-3000:]
    err = out.stderr[out.stderr.index('error: '):].strip()  # after import-time library warnings
    assert len(err.splitlines()) <= max_lines, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize('name', ['garbage', 'truncated', 'evil'])
def test_test_py_with_a_file_that_is_no_checkpoint(tiny, tmp_path, name):
    path, words = _bad_checkpoints(tmp_path)[name]
    err = _short_error(run_tool(['test.py', tiny, path, '--work-dir', tmp_path / 'w']))
    assert err.startswith(f'error: {path} ') and words in err, err
    assert not UNSAFE_ADVICE.search(err), err


@pytest.mark.slow
def test_test_py_with_a_detector_checkpoint_of_another_arch(tiny, tmp_path):
    m1 = tmp_path / 'm1.py'
    m1.write_text(f"_base_ = {str(tiny)!r}\n"
                  "model = dict(backbone=dict(arch='m1'), neck=dict(in_channels=[128, 144, 192]))\n")
    ckpt = tmp_path / 'retinanet_m1.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(str(m1)).model).state_dict(),
                    meta=dict(epoch=1)), ckpt)
    err = _short_error(run_tool(['test.py', tiny, ckpt, '--work-dir', tmp_path / 'w']))
    assert err.startswith(f'error: {ckpt} does not fit the model of {tiny}'), err
    assert "the checkpoint's backbone looks like EfficientViT-M1, the config builds EfficientViT-M0" in err
    mis = re.search(r'(\d+) mis-shaped keys \(checkpoint vs model\): (.*?) … \(\+(\d+) more\)', err)
    assert mis and int(mis.group(1)) == int(mis.group(3)) + 3, err  # a count and three examples
    assert 'backbone.patch_embed.0.c.weight (16, 3, 3, 3) vs (8, 3, 3, 3)' in mis.group(2)
    assert 'size mismatch for' not in err and len(err) < 1500


@pytest.mark.slow
def test_train_py_with_a_malformed_annotation_file(tiny, tmp_path):
    data = tmp_path / 'data'
    for split in ('train', 'val'):
        write_coco_split(data, split, CLASSES, num_images=2).rename(data / f'{split}.json')
    text = (data / 'val.json').read_text()
    assert text.startswith('{"images": [')
    (data / 'val.json').write_text(text.replace('[', '[\n,', 1))  # a stray comma on line 2
    cfg = tiny_config(tmp_path / 'cfg.py', data)
    err = _short_error(run_tool(['train.py', cfg, '--work-dir', tmp_path / 'w']))
    assert re.fullmatch(rf'error: annotation file {re.escape(str(data / "val.json"))} is not valid '
                        r'JSON: Expecting value \(line 2, column 1\)\. Repair it, or download / '
                        r'generate it again',
                        err), err


@pytest.mark.slow
def test_unknown_arch_in_a_config(tiny, tmp_path):
    m9 = tmp_path / 'm9.py'
    m9.write_text(f"_base_ = {str(tiny)!r}\nmodel = dict(backbone=dict(arch='m9'))\n")
    ckpt = tmp_path / 'any.pth'
    torch.save({'state_dict': {}}, ckpt)
    for args in (['train.py', m9], ['test.py', m9, ckpt]):
        err = _short_error(run_tool(args + ['--work-dir', tmp_path / 'w']))
        assert err.startswith(f"error: {m9}: Unknown EfficientViT arch 'm9'; choose one of"), err


def _rtmdet_config(path: Path, data_root: Path, arch: str = 'm0') -> Path:
    """The RTMDet demo config on generated data, optionally with another arch."""
    channels = {'m0': [64, 128, 192], 'm1': [128, 144, 192]}[arch]
    root = str(data_root) + '/'
    path.write_text(
        f"_base_ = {str(CONFIGS / 'demo' / 'rtmdet_evit_demo_shapes.py')!r}\n"
        f"model = dict(backbone=dict(arch={arch!r}), neck=dict(in_channels={channels!r}))\n"
        f"train_dataloader = dict(dataset=dict(data_root={root!r}))\n"
        f"val_dataloader = dict(dataset=dict(data_root={root!r}))\n"
        f"test_dataloader = val_dataloader\n"
        f"val_evaluator = dict(ann_file={root + 'val.json'!r})\n"
        "test_evaluator = val_evaluator\n")
    return path


@pytest.mark.slow
def test_rtmdet_test_py_with_a_checkpoint_of_another_arch_or_no_detector(tiny, tmp_path):
    """The real-time configs give the RetinaNet configs' one-line errors: an RTMDet checkpoint of
    another arch, and an ImageNet classifier checkpoint where a detector is expected."""
    data = Path(str(tiny)).parent
    cfg = _rtmdet_config(tmp_path / 'rtmdet_m0.py', data)
    m1 = _rtmdet_config(tmp_path / 'rtmdet_m1.py', data, 'm1')
    init_default_scope('mmdet')
    ckpt = tmp_path / 'rtmdet_m1.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(str(m1)).model).state_dict(),
                    meta=dict(epoch=1)), ckpt)
    err = _short_error(run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / 'w']))
    assert err.startswith(f'error: {ckpt} does not fit the model of {cfg}'), err
    assert "the checkpoint's backbone looks like EfficientViT-M1, the config builds EfficientViT-M0" in err

    classifier = tmp_path / 'efficientvit_m0.pth'  # the official ImageNet release's layout
    torch.save({'model': EfficientViT(arch='m0').state_dict()}, classifier)
    err = _short_error(run_tool(['test.py', cfg, classifier, '--work-dir', tmp_path / 'w2']))
    assert err.startswith(f'error: {classifier} does not fit the model of {cfg}: it holds an '
                          'EfficientViT-M0 backbone alone (an ImageNet checkpoint), not a detector'), err
