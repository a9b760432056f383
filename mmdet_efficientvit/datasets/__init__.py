"""Datasets. The synthetic DemoShapes generator (``datasets.demo_shapes``) is imported on demand only:
registering our modules does not need it."""
