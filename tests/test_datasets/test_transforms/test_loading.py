"""An unreadable image: skipped and reported in training (LoadImageFromFileOrSkip + SkippedImagesHook,
counted across dataloader worker processes and per epoch), one short message in evaluation
(tools/test.py with mmcv's LoadImageFromFile in a dataloader worker)."""
import multiprocessing
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmdet_efficientvit.datasets import LoadImageFromFileOrSkip, SkipRecord
from mmdet_efficientvit.datasets.demo_shapes import generate_demo_shapes

from _data import run_tool, tiny_config


def _add_in_child(record: SkipRecord, idx: int) -> None:
    record.add(idx)


def test_skip_record_counts_across_processes_and_reports_each_sample_once():
    record = SkipRecord(num_samples=4)
    assert record.add(2) is True and record.add(2) is False
    ctx = multiprocessing.get_context('fork')
    children = [ctx.Process(target=_add_in_child, args=(record, i)) for i in (2, 3, 3)]
    for child in children:
        child.start()
    for child in children:
        child.join()
    assert record.total == 5
    assert record.add(3) is False and record.add(1) is True  # 3 was flagged by a child process


def test_unreadable_image_is_skipped_and_named_once(tmp_path, log_lines):
    good, corrupt, missing = tmp_path / 'good.png', tmp_path / 'corrupt.jpg', tmp_path / 'none.jpg'
    cv2.imwrite(str(good), np.zeros((4, 6, 3), np.uint8))
    corrupt.write_bytes(b'\xff\xd8 this is not a JPEG')
    load = LoadImageFromFileOrSkip()
    assert load.transform(dict(img_path=str(good)))['img'].shape == (4, 6, 3)
    for path in (corrupt, missing, corrupt):
        assert load.transform(dict(img_path=str(path), sample_idx=0)) is None
    warnings = [line for line in log_lines if 'skipping unreadable training image' in line]
    assert len(warnings) == 2, warnings  # each file once
    assert str(corrupt) in warnings[0] and 'not a decodable image' in warnings[0]
    assert str(missing) in warnings[1] and 'file not found' in warnings[1]


def _shapes_with_a_corrupt_image(root: Path, split: str) -> Path:
    """DemoShapes data whose first ``split`` image is truncated (a broken download: header only)."""
    generate_demo_shapes(str(root), num_train=8, num_val=2, img_size=(96, 64), seed=0)
    corrupt = sorted((root / split).glob('*.jpg'))[0]
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    return corrupt


def _config(tmp_path: Path, data: Path) -> Path:
    """The tiny RetinaNet config with our loading step in training, one dataloader worker per split."""
    tiny = tiny_config(tmp_path / 'tiny.py', data, max_epochs=2, val_interval=10)
    path = tmp_path / 'skip.py'
    path.write_text(f"""
_base_ = {str(tiny)!r}
size = (128, 96)
train_dataloader = dict(num_workers=1, dataset=dict(pipeline=[
    dict(type='LoadImageFromFileOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=size, keep_ratio=True),
    dict(type='PackDetInputs')]))
val_dataloader = dict(num_workers=1)
test_dataloader = val_dataloader
""")
    return path


@pytest.mark.slow
def test_training_survives_a_corrupt_image_and_counts_it_per_epoch(tmp_path):
    data = tmp_path / 'shapes'
    corrupt = _shapes_with_a_corrupt_image(data, 'train')
    cfg = _config(tmp_path, data)
    work = tmp_path / 'work'
    out = run_tool(['train.py', cfg, '--work-dir', work])
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert (work / 'epoch_2.pth').is_file()
    log = next(work.glob('*/*.log')).read_text()
    named = [line for line in log.splitlines() if f'skipping unreadable training image {corrupt}' in line]
    assert len(named) == 1, log[-3000:]  # once, although the worker process meets it every epoch
    # The sampler asks for every image once per epoch; the sample drawn in its place is a readable one
    # (mmengine seeds the worker alike each epoch), so each epoch skipped exactly one load.
    counts = re.findall(r'Epoch (\d+): skipped (\d+) loads of unreadable training images', log)
    assert counts == [('1', '1'), ('2', '1')], log[-3000:]


@pytest.mark.slow
def test_corrupt_image_in_evaluation_is_one_message(tmp_path):
    from mmdet.registry import MODELS
    from mmengine.config import Config

    data = tmp_path / 'shapes'
    corrupt = _shapes_with_a_corrupt_image(data, 'val')
    cfg = _config(tmp_path, data)
    ckpt = tmp_path / 'random.pth'
    torch.save(dict(state_dict=MODELS.build(Config.fromfile(str(cfg)).model).state_dict()), ckpt)
    out = run_tool(['test.py', cfg, ckpt, '--work-dir', tmp_path / 'work'])
    assert out.returncode == 1
    assert 'Traceback' not in out.stdout + out.stderr, out.stderr[-3000:]
    err = out.stderr[out.stderr.index('error: '):].strip()
    assert err.startswith(f'error: cannot decode image {corrupt}; evaluation reads every image'), err
    assert len(err.splitlines()) == 1, err
