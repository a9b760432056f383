"""Stack checks and safe checkpoint loading, in one place.

``check_environment`` fails early, with the fix, when the installed MMDetection stack is not one of the two
supported ones (``version.STACKS``: upstream OpenMMLab or OneDL, told apart by distribution name, since
both install the modules mmengine, mmcv and mmdet), mixes them, is outside the range we test, or lacks
mmcv's compiled ops. ``allow_checkpoint_globals`` lets PyTorch >= 2.6 load mmengine/mmdet training
checkpoints with ``weights_only=True`` (the default that mmengine 0.10.7 inherits) by allow-listing only
the few globals those checkpoints contain; loading stays restricted, so a file whose pickle tries to run
code is still refused. ``refuse_unsafe_fallback`` keeps it so on onedl-mmengine, whose loader would
otherwise retry such a file with ``weights_only=False``.

``compat.mmdeploy`` (opt-in: nothing here imports it) makes mmdeploy 1.3.1 export on current PyTorch.
"""
import importlib
import importlib.metadata
import pickle
from typing import Any, Callable, List, Optional, Tuple, Union

from packaging.version import Version

from ..version import STACKS, TORCH, TORCH_FLOOR_REASON, requirement


def _stack_summary(name: str) -> str:
    stack = STACKS[name]
    libs = ', '.join(requirement(p.distributions[0], p.low, p.high) for p in stack.packages.values())
    return f'{stack.label} ({libs}; `{stack.setup}`)'


SETUP_HINT = ('mmdet-efficientvit supports two MMDetection stacks: '
              + ' or '.join(_stack_summary(name) for name in STACKS)
              + '; run one of the commands in the mmdet-efficientvit checkout to build that stack.')


class UnsupportedStackError(ImportError):
    """The installed MMDetection stack cannot run this package."""


def check_environment() -> None:
    """Raise ``UnsupportedStackError`` (one line: the problem, the supported stacks, the command that
    builds one) if the stack is unusable.

    torch comes first, so an old torch is reported before anything calls an API it lacks.
    """
    import torch
    if not _in_range(torch.__version__, TORCH[1], TORCH[2]):
        raise UnsupportedStackError(
            f'mmdet-efficientvit supports {requirement(*TORCH)} ({TORCH_FLOOR_REASON}), found '
            f'torch=={torch.__version__}. {SETUP_HINT}')
    found = {module: _installed(module) for module in ('mmengine', 'mmcv', 'mmdet')}
    stacks = {stack for stack, _, _ in found.values()}
    if len(stacks) > 1:
        parts = ', '.join(f'{dist}=={version} ({STACKS[stack].label})'
                          for stack, dist, version in found.values())
        raise UnsupportedStackError(f'mixed MMDetection stack: {parts}. {SETUP_HINT}')
    stack, = stacks
    for module, (_, dist, version) in found.items():
        package = STACKS[stack].packages[module]
        if not _in_range(version, package.low, package.high):
            raise UnsupportedStackError(
                f'mmdet-efficientvit supports {requirement(dist, package.low, package.high)} on the '
                f'{STACKS[stack].label} stack, found {dist}=={version}. {SETUP_HINT}')
    try:
        importlib.import_module('mmcv._ext')
    except ImportError as err:
        _, dist, version = found['mmcv']
        raise UnsupportedStackError(
            f'{dist}=={version} is installed without its compiled ops (mmcv._ext is missing: {err}); '
            'mmdet needs them (NMS, RoIAlign, ...). mmcv-lite, an mmcv source build without '
            'MMCV_WITH_OPS=1 or an onedl-mmcv build without torch at build time (pip without '
            f'--no-build-isolation) causes this. {SETUP_HINT}') from None


def _installed(module: str) -> Tuple[str, str, str]:
    """(stack, distribution, version) of the one supported distribution that installs ``module``."""
    present = [(stack, dist, version) for stack in STACKS
               for dist in STACKS[stack].packages[module].distributions
               if (version := _distribution_version(dist)) is not None]
    if len(present) > 1:
        both = ' and '.join(f'{dist}=={version}' for _, dist, version in present)
        raise UnsupportedStackError(
            f'{both} are installed together, and each writes its `{module}` module over the other: '
            f'keep one stack per environment. {SETUP_HINT}')
    if not present:
        names = ', '.join(d for s in STACKS for d in STACKS[s].packages[module].distributions)
        others = importlib.metadata.packages_distributions().get(module)  # slow: the failure path only
        what = (f'`{module}` comes from {", ".join(sorted(set(others)))}, none of the supported '
                f'distributions ({names})' if others else
                f'mmdet-efficientvit needs `{module}` ({names}), which is not installed')
        raise UnsupportedStackError(f'{what}. {SETUP_HINT}')
    return present[0]


def _distribution_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _in_range(version: str, low: str, high: Optional[str]) -> bool:
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


def refuse_unsafe_fallback() -> None:
    """Keep mmengine's checkpoint loading at ``weights_only=True`` on onedl-mmengine too.

    onedl-mmengine's ``_safe_torch_load`` (behind ``load_checkpoint``, ``load_from`` and resume) tries
    ``weights_only=True`` with its own allow-list, then retries any file it refuses with
    ``weights_only=False``: a pickle that runs code would run, behind one logged warning. Upstream
    mmengine 0.10.7 calls ``torch.load`` with torch's default, ``weights_only=True``. This puts that
    behaviour in its place, so our allow-list decides on both stacks and a refused file stays refused.
    No-op on upstream mmengine, which has no ``_safe_torch_load``.
    """
    from mmengine.runner import checkpoint
    if not hasattr(checkpoint, '_safe_torch_load'):
        return
    import torch

    def torch_load(file, map_location=None, weights_only=None):
        return torch.load(file, map_location=map_location, weights_only=weights_only)

    checkpoint._safe_torch_load = torch_load
