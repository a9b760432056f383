"""AtomicCheckpointHook: mmengine's CheckpointHook, but a kill at any moment leaves a resumable run.

mmengine writes ``epoch_N.pth`` in place and rewrites ``last_checkpoint`` in place, and with
``max_keep_ckpts`` it deletes the oldest checkpoint *before* writing the new one. A SIGKILL (OOM killer,
preempted node) while saving can therefore leave a truncated checkpoint that ``--resume`` picks, an empty
``last_checkpoint``, or a ``last_checkpoint`` naming a deleted file. This hook writes each checkpoint to
``<name>.tmp``, fsyncs it and ``os.replace``-s it into place, then replaces ``last_checkpoint`` the same
way, and only then deletes checkpoints that fell out of ``max_keep_ckpts``.
"""
import os
import os.path as osp
import shutil

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmdet.registry import HOOKS


def _fsync(path: str) -> None:
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old or the new content."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """Drop-in replacement for ``CheckpointHook`` (same arguments) with crash-safe saving.

    Only local directories get the atomic path (``os.replace`` is what makes it atomic); other storage
    backends fall back to mmengine's behaviour.
    """

    def _save_checkpoint_with_step(self, runner, step, meta):
        if not isinstance(self.file_backend, LocalBackend):
            return super()._save_checkpoint_with_step(runner, step, meta)

        # Same bookkeeping as CheckpointHook, but the outdated checkpoint is only removed at the end.
        outdated = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(  # master-only inside mmengine
            self.out_dir,
            filename + '.tmp',
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return

        tmp = self.last_ckpt + '.tmp'
        if osp.isfile(tmp):  # (DeepSpeed-style strategies save a directory)
            _fsync(tmp)
        os.replace(tmp, self.last_ckpt)
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        for old in outdated:
            path = osp.join(self.out_dir, self.filename_tmpl.format(old))
            if osp.isfile(path):
                os.remove(path)
            elif osp.isdir(path):  # strategies such as DeepSpeed save a directory
                shutil.rmtree(path)
