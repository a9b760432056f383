"""SkippedImagesHook: the count of unreadable training images skipped in each epoch, in the log.

:class:`~mmdet_efficientvit.datasets.LoadImageFromFileOrSkip` skips an unreadable training image (its
warning names the file once). The loads happen in the dataloader's worker processes, so this hook gives
each such transform of the training set a :class:`~mmdet_efficientvit.datasets.SkipRecord` (shared
memory) before the workers start, and after every epoch logs how many loads were skipped in it, summed
over all workers (and all ranks in distributed training). Epochs without skips log nothing.
"""
import logging
from typing import Iterator, List

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmdet.registry import HOOKS

from ...datasets.transforms import LoadImageFromFileOrSkip, SkipRecord


def _datasets(dataset) -> Iterator:
    """``dataset`` and every dataset it wraps (RepeatDataset, ConcatDataset, ...)."""
    yield dataset
    for inner in [getattr(dataset, 'dataset', None), *getattr(dataset, 'datasets', [])]:
        if inner is not None:
            yield from _datasets(inner)


@HOOKS.register_module()
class SkippedImagesHook(Hook):
    """Log the number of training-image loads that ``LoadImageFromFileOrSkip`` skipped per epoch."""

    priority = 'LOW'

    def __init__(self):
        self.records: List[SkipRecord] = []
        self._at_epoch_start = 0

    def before_train(self, runner) -> None:
        self.records = []
        for dataset in _datasets(runner.train_dataloader.dataset):
            transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms', [])
            for transform in transforms:
                if isinstance(transform, LoadImageFromFileOrSkip):
                    transform.record = SkipRecord(len(dataset))
                    self.records.append(transform.record)
        if not self.records:
            print_log('SkippedImagesHook: the training pipeline has no LoadImageFromFileOrSkip, so '
                      'no image is ever skipped (an unreadable image stops the run)',
                      logger='current', level=logging.WARNING)

    def _total(self) -> int:
        return sum(record.total for record in self.records)

    def before_train_epoch(self, runner) -> None:
        self._at_epoch_start = self._total()

    def after_train_epoch(self, runner) -> None:
        skipped = torch.tensor(self._total() - self._at_epoch_start)
        if is_distributed():
            all_reduce(skipped)
        if skipped.item():
            print_log(f'Epoch {runner.epoch + 1}: skipped {skipped.item()} loads of unreadable '
                      'training images (each replaced by another sample; the files are named in the '
                      'warnings above)', logger='current', level=logging.WARNING)
