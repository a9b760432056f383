from .loading import LoadImageFromFileOrSkip, SkipRecord

__all__ = ['LoadImageFromFileOrSkip', 'SkipRecord']
