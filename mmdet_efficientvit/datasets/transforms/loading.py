"""LoadImageFromFileOrSkip: mmcv's LoadImageFromFile that skips an unreadable training image.

mmcv's transform raises on a missing or undecodable file, which stops a whole training run (after hours
on COCO). This one logs a warning naming the file the first time it is met and returns ``None``:
mmengine's ``BaseDataset`` then serves another random sample in its place.
:class:`~mmdet_efficientvit.engine.SkippedImagesHook` counts the skips of each epoch in the log, across
dataloader workers.

For training pipelines only. Evaluation must see every image (a skipped one would change the metric
silently, and mmengine refuses ``None`` in test mode), so test pipelines keep mmcv's
``LoadImageFromFile``, which mmdet's ``DetInferencer`` also looks for by name; ``tools/test.py``
reports an unreadable evaluation image in one line (``tools_support.short_errors``).
"""
import logging
import multiprocessing
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmdet.registry import TRANSFORMS
from mmengine.logging import print_log


class SkipRecord:
    """Skipped loads of one pipeline, shared by the dataloader worker processes.

    Made in the main process before the workers start (``SkippedImagesHook.before_train``), so forked
    workers inherit it and spawned ones receive it with the dataset. ``flags`` marks the samples already
    reported, so each unreadable file is named once per run whichever worker meets it.
    """

    def __init__(self, num_samples: int):
        self.count = multiprocessing.Value('q', 0)  # its lock also guards ``flags``
        self.flags = multiprocessing.Array('b', num_samples, lock=False)

    def add(self, sample_idx: Optional[int]) -> bool:
        """Count one skipped load; True when the sample had not been skipped before."""
        with self.count.get_lock():
            self.count.value += 1
            if sample_idx is None or not 0 <= sample_idx < len(self.flags):
                return True
            first = not self.flags[sample_idx]
            self.flags[sample_idx] = 1
            return first

    @property
    def total(self) -> int:
        return self.count.value


@TRANSFORMS.register_module()
class LoadImageFromFileOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` (same arguments) that skips an unreadable training image instead of
    raising: a warning names the file once, and ``None`` makes the dataset serve another sample."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.record: Optional[SkipRecord] = None  # set by SkippedImagesHook; else per-process
        self._reported = set()

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except Exception as err:  # what mmcv raises: a missing file, an undecodable one (assert), I/O
            path = results.get('img_path')
            reason = 'file not found' if isinstance(err, FileNotFoundError) else (
                'not a decodable image' if isinstance(err, AssertionError) else
                f'{type(err).__name__}: {err}')
            idx = results.get('sample_idx')
            if self.record is not None:
                first = self.record.add(idx)
            else:
                first = path not in self._reported
                self._reported.add(path)
            if first:
                print_log(f'skipping unreadable training image {path} ({reason}); another sample '
                          'takes its place (mmdet_efficientvit LoadImageFromFileOrSkip)',
                          logger='current', level=logging.WARNING)
            return None
