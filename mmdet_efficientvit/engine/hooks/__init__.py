from .atomic_checkpoint_hook import AtomicCheckpointHook
from .skipped_images_hook import SkippedImagesHook

__all__ = ['AtomicCheckpointHook', 'SkippedImagesHook']
