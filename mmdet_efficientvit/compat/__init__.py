"""Stack checks and safe checkpoint loading, in one place.

``check_environment`` fails early, with the fix, when mmcv lacks its compiled ops or a library version is
outside the range we test. ``allow_checkpoint_globals`` lets PyTorch >= 2.6 load mmengine/mmdet training
checkpoints with ``weights_only=True`` (the default that mmengine 0.10.7 inherits) by allow-listing only
the few globals those checkpoints contain; loading stays restricted, so a file whose pickle tries to run
code is still refused.

``compat.mmdeploy`` (opt-in: nothing here imports it) makes mmdeploy 1.3.1 export on current PyTorch.
"""
import importlib
import pickle
from typing import Any, Callable, List, Tuple, Union

from packaging.version import Version

from ..version import FLOOR_REASONS, SUPPORTED, requirement

SETUP_HINT = 'Run `make setup` in the mmdet-efficientvit checkout to build the tested stack in .venv/.'


class UnsupportedStackError(ImportError):
    """The installed MMDetection stack cannot run this package."""


def check_environment() -> None:
    """Raise ``ImportError`` naming the problem and the fix if the stack is unusable.

    torch comes first in ``SUPPORTED``, so an old torch is reported before anything calls an API it lacks.
    """
    for package, _, _ in SUPPORTED:
        try:
            version = importlib.import_module(package).__version__
        except ImportError as err:
            raise UnsupportedStackError(
                f'mmdet-efficientvit needs {requirement(package)}, which is not importable ({err}). '
                f'{SETUP_HINT}') from None
        if not _supported(package, version):
            reason = f' ({FLOOR_REASONS[package]})' if package in FLOOR_REASONS else ''
            raise UnsupportedStackError(
                f'mmdet-efficientvit supports {requirement(package)}{reason}, found '
                f'{package}=={version}. {SETUP_HINT}')
    try:
        importlib.import_module('mmcv._ext')
    except ImportError as err:
        raise UnsupportedStackError(
            'mmcv is installed without its compiled ops (mmcv._ext is missing: '
            f'{err}); mmdet needs them (NMS, RoIAlign, ...). The `mmcv-lite` package or a source build '
            f'without MMCV_WITH_OPS=1 causes this. {SETUP_HINT}') from None


def _supported(package: str, version: str) -> bool:
    low, high = next((lo, hi) for name, lo, hi in SUPPORTED if name == package)
    release = Version(Version(version).base_version)  # 2.14.1+cu130 -> 2.14.1
    return Version(low) <= release and (high is None or release < Version(high))


def _history_buffer_statistic(owner: Any, name: str) -> Callable:
    """The one ``getattr`` an mmengine checkpoint needs: a HistoryBuffer statistics method.

    A HistoryBuffer pickles its ``_statistics_methods`` as ``getattr(HistoryBuffer, 'mean')`` and so on.
    Allow-listing ``builtins.getattr`` itself would let a file reach any attribute of any allowed object;
    this stand-in, registered under that name, answers only HistoryBuffer's registered statistics.
    """
    from mmengine.logging import HistoryBuffer
    allowed = {'min', 'max', 'mean', 'current'} | set(HistoryBuffer._statistics_methods)
    if owner is not HistoryBuffer or name not in allowed:
        raise pickle.UnpicklingError(
            f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: only '
            f'HistoryBuffer statistics methods {sorted(allowed)} are allowed')
    return getattr(HistoryBuffer, name)


def checkpoint_safe_globals() -> List[Union[Any, Tuple[Any, str]]]:
    """The globals that mmengine/mmdet checkpoints pickle, beyond PyTorch's defaults.

    - ``HistoryBuffer``: the message hub's logged scalars (resume needs them). Loading creates the object
      and sets its attributes; it has no ``__setstate__`` and runs no code of the file's choosing.
    - numpy arrays, dtypes and scalars (HistoryBuffer histories, numpy values in ``meta``), under both the
      numpy 2 (``numpy._core``) and numpy 1 (``numpy.core``) paths: these build arrays from bytes only.
    - ``builtins.getattr`` mapped to :func:`_history_buffer_statistic`, which answers nothing else.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer

    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtype_classes = {type(np.dtype(c)) for c in '?bhilqBHILQefdgFDGSUV'} | {type(np.dtype('O'))}
    safe: List[Union[Any, Tuple[Any, str]]] = [
        HistoryBuffer, np.ndarray, np.dtype, *sorted(dtype_classes, key=str),
        (_history_buffer_statistic, 'builtins.getattr'),
    ]
    for module in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        safe += [(multiarray._reconstruct, f'{module}._reconstruct'),
                 (multiarray.scalar, f'{module}.scalar')]
    return safe


def allow_checkpoint_globals() -> None:
    """Register :func:`checkpoint_safe_globals` with ``torch.serialization`` (idempotent)."""
    import torch
    torch.serialization.add_safe_globals(checkpoint_safe_globals())
