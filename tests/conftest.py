"""Shared test set-up: every test starts in mmdet's registry scope.

mmengine keeps the default scope in a process-wide instance, and a Runner built by one test (with
its own ``default_scope``) would otherwise decide where ``MODELS.build`` looks in the next one.
"""
import pytest
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def mmdet_default_scope():
    init_default_scope('mmdet')
