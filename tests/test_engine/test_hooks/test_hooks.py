"""AtomicCheckpointHook: a kill while saving never leaves an unresumable run; outdated checkpoints go."""
import logging
import os
import pickle
from collections import deque
from pathlib import Path

import pytest
from mmengine.fileio import LocalBackend
from mmengine.logging import MessageHub

from mmdet_efficientvit.engine import AtomicCheckpointHook


class _FakeRunner:
    """What CheckpointHook touches on a runner; save_checkpoint can die half-way like a SIGKILL."""

    def __init__(self, work_dir: Path):
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance('atomic-ckpt-test')
        self.logger = logging.getLogger('atomic-ckpt-test')
        self.epoch, self.iter, self.max_epochs = 0, 0, 2
        self.die_after_bytes = None

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        payload = pickle.dumps(dict(epoch=self.epoch + 1)) * 100
        with open(os.path.join(out_dir, filename), 'wb') as f:
            if self.die_after_bytes is None:
                f.write(payload)
            else:
                f.write(payload[:self.die_after_bytes])
                raise KeyboardInterrupt('killed while saving')


def _hook(out_dir: Path, keep_ckpt_ids) -> AtomicCheckpointHook:
    """The hook as before_train leaves it (keep_ckpt_ids as restored from the resumed checkpoint)."""
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.out_dir, hook.file_backend = str(out_dir), LocalBackend()
    hook.keep_ckpt_ids = deque(keep_ckpt_ids, 1)
    return hook


def test_checkpoint_hook_survives_a_kill_while_saving(tmp_path):
    """With max_keep_ckpts=1, mmengine deletes epoch_1 before writing epoch_2; a kill in between
    would leave nothing to resume. Ours keeps epoch_1 and last_checkpoint until epoch_2 is complete."""
    runner = _FakeRunner(tmp_path)
    _hook(tmp_path, []).after_train_epoch(runner)
    first = tmp_path / 'epoch_1.pth'
    assert (tmp_path / 'last_checkpoint').read_text() == str(first)
    complete = first.read_bytes()

    runner.epoch, runner.die_after_bytes = 1, 10
    with pytest.raises(KeyboardInterrupt):
        _hook(tmp_path, [1]).after_train_epoch(runner)
    assert (tmp_path / 'last_checkpoint').read_text() == str(first)
    assert first.read_bytes() == complete  # still there, still whole
    assert not (tmp_path / 'epoch_2.pth').exists()  # only a .tmp, which resume never picks

    runner.die_after_bytes = None  # the resumed run saves epoch 2 again
    _hook(tmp_path, [1]).after_train_epoch(runner)
    assert (tmp_path / 'last_checkpoint').read_text() == str(tmp_path / 'epoch_2.pth')
    assert pickle.loads((tmp_path / 'epoch_2.pth').read_bytes()[:len(pickle.dumps(dict(epoch=2)))]) \
        == {'epoch': 2}
    assert not first.exists()  # max_keep_ckpts honoured once the new one is in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_2.pth', 'last_checkpoint']


def test_outdated_directory_checkpoints_are_removed(tmp_path):
    """Strategies such as DeepSpeed save each checkpoint as a directory; mmengine's hook removes
    outdated ones, so ours must too."""
    runner = _FakeRunner(tmp_path)
    old = tmp_path / 'epoch_1.pth'
    old.mkdir()
    (old / 'mp_rank_00_model_states.pt').write_bytes(b'x')
    runner.epoch = 1
    _hook(tmp_path, [1]).after_train_epoch(runner)
    assert not old.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_2.pth', 'last_checkpoint']
