"""The stack guard: fail early, with the fix, on an MMDetection stack this package cannot run on.

``check_environment`` raises when the installed stack is not one of the two supported ones
(``version.STACKS``: upstream OpenMMLab or OneDL, told apart by distribution name, since both install
the modules mmengine, mmcv and mmdet), mixes them, is outside the range we test, or lacks mmcv's
compiled ops. (Safe checkpoint loading, which the stacks differ in too, lives with the checkpoint
reader: ``models/utils/checkpoint/reading.py``.)

``compat.mmdeploy`` (opt-in: nothing here imports it) makes mmdeploy 1.3.1 export on current PyTorch.
"""
import importlib
import importlib.metadata
from typing import Optional, Tuple

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
