"""The package version and the library versions it supports: read by ``setup.py`` (without importing
the package) and by the import guard in ``compat/``."""
from typing import Dict, NamedTuple, Tuple

__version__ = '0.1.0'

# torch has one distribution; the guard reads the imported module's version (builds carry local tags such
# as +cu130). Why the floor is where it is (the import guard says it), read from torch's sources: 2.4.0
# added ``add_safe_globals`` (objects only); 2.6.0 accepts the ``(object, 'module.name')`` pairs the
# checkpoint allow-list registers (2.5 fails on them at the first ``torch.load``) and makes
# ``weights_only=True`` the ``torch.load`` default that the allow-list is for.
TORCH = ('torch', '2.6.0', None)  # (distribution, lowest supported, first unsupported)
TORCH_FLOOR_REASON = ('safe checkpoint loading registers (object, name) pairs with '
                      'torch.serialization.add_safe_globals, which torch accepts from 2.6 on')


class Package(NamedTuple):
    """One library of a stack: the distributions that install ``module``, and the supported range."""
    distributions: Tuple[str, ...]  # the first is the one `make setup` installs
    low: str                        # lowest supported
    high: str                       # first unsupported


class Stack(NamedTuple):
    """A supported MMDetection stack and the command that builds it."""
    label: str
    setup: str
    packages: Dict[str, Package]    # module -> package; both stacks install the same three modules


# The two supported stacks. Both install the modules mmengine, mmcv and mmdet, so the guard tells them
# apart by distribution name. CI tests upstream with mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0 and OneDL
# with onedl-mmengine 0.10.12, onedl-mmcv 2.3.6, onedl-mmdetection 3.5.1 (tools/setup_env.sh pins both).
# ``mmcv-lite`` is OpenMMLab's build of the same mmcv without compiled ops: the guard names the missing
# ops rather than the distribution (tools/analysis_tools/gpu_check.py runs on it with a stand-in).
STACKS: Dict[str, Stack] = {
    'upstream': Stack('upstream OpenMMLab', 'make setup', {
        'mmengine': Package(('mmengine',), '0.10.0', '0.11.0'),
        'mmcv': Package(('mmcv', 'mmcv-lite'), '2.0.0', '2.2.0'),
        'mmdet': Package(('mmdet',), '3.0.0', '3.4.0'),
    }),
    'onedl': Stack('OneDL', 'STACK=onedl make setup', {
        'mmengine': Package(('onedl-mmengine',), '0.10.8', '0.11.0'),
        'mmcv': Package(('onedl-mmcv',), '2.3.0', '2.4.0'),
        'mmdet': Package(('onedl-mmdetection',), '3.5.0', '3.6.0'),
    }),
}


# mmdeploy is optional: ``compat/mmdeploy.py`` makes this release export on torch >= 2.9. It is installed
# with --no-deps (its pins, protobuf<=3.20.2 among them, would downgrade what onnx needs), plus the
# small packages it imports that the stack lacks (the ``mmdeploy`` extra of setup.py).
MMDEPLOY_VERSION = '1.3.1'
MMDEPLOY_DEPS = ('aenum', 'prettytable', 'terminaltables', 'multiprocess')
MMDEPLOY_INSTALL = (f'pip install --no-deps mmdeploy=={MMDEPLOY_VERSION} && '
                    f"pip install {' '.join(MMDEPLOY_DEPS)}")
# onedl-mmdeploy (VBTI's continuation; Windows wheels only on PyPI) carries both of the fix's changes itself
# from this release on (read from its source: its import makes ``dynamo=False`` the ``torch.onnx.export``
# default, and its RoIAlign symbolic no longer imports ``_cast_Long``), so the fix does nothing there.
ONEDL_MMDEPLOY_FIXED = '1.5.0'


def requirement(distribution: str, low: str, high: str = None) -> str:
    """A pip requirement string, e.g. ``'mmcv>=2.0.0,<2.2.0'``."""
    return f'{distribution}>={low}' + (f',<{high}' if high else '')


def stack_requirements(stack: str) -> list:
    """The pip requirements of a supported stack's libraries (what `pip install .[<stack>]` adds)."""
    return [requirement(p.distributions[0], p.low, p.high) for p in STACKS[stack].packages.values()]
