"""Datasets: the loading step that skips unreadable training images. The synthetic DemoShapes generator
(``datasets.demo_shapes``) is imported on demand only: registering our modules does not need it."""
from .transforms import LoadImageFromFileOrSkip, SkipRecord

__all__ = ['LoadImageFromFileOrSkip', 'SkipRecord']
