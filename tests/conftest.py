"""Shared fixtures. Plain helper functions (data, checkpoints, running the tools) are in ``_data.py``.

Every test starts in mmdet's registry scope: mmengine keeps the default scope in a process-wide
instance, and a Runner built by one test (with its own ``default_scope``) would otherwise decide where
``MODELS.build`` looks in the next one.
"""
import logging

import pytest
import torch
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def mmdet_default_scope():
    init_default_scope('mmdet')


@pytest.fixture(autouse=True)
def no_closed_log_files():
    """Drop log-file handlers that something closed: the demo page's web server configures logging
    with ``logging.config.dictConfig``, which closes every open handler, and mmengine's
    ``init_weights`` writes straight to the file handlers of the current logger (a Runner of an
    earlier test left one)."""
    for logger in MMLogger._instance_dict.values():
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and handler.stream is None:
                logger.removeHandler(handler)


@pytest.fixture(scope='module')
def single_thread():
    """Small, latency-bound workloads: one thread avoids OpenMP barrier stalls on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def retinanet_e2e(tmp_path_factory):
    """One small RetinaNet-M0 (data, config, checkpoint) and its end-to-end ONNX graph exported by
    the tool (``_deploy.export_retinanet``), shared by the deployment and runtime tests."""
    pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (make setup installs it)')
    from _deploy import export_retinanet
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return export_retinanet(tmp_path_factory.mktemp('retinanet_e2e'))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def log_lines():
    """Messages logged through mmengine's current logger during the test."""
    records = []

    class Collect(logging.Handler):

        def emit(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Collect(level=logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
