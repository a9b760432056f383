"""Datasets: the synthetic DemoShapes generator (read through mmdet's CocoDataset)."""
from .demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes

__all__ = ['DEMO_SHAPES_CLASSES', 'generate_demo_shapes']
