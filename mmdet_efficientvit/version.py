"""The package version and the library versions it supports: read by ``setup.py`` (without importing
the package) and by the import guards in ``compat/``."""
__version__ = '0.1.0'

# (package, lowest supported, first unsupported). CI tests torch 2.14.1, mmengine 0.10.7, mmcv 2.1.0 and
# mmdet 3.3.0.
SUPPORTED = (
    ('torch', '2.6.0', None),
    ('mmengine', '0.10.0', '0.11.0'),
    ('mmcv', '2.0.0', '2.2.0'),
    ('mmdet', '3.0.0', '3.4.0'),
)

# Why a floor is where it is (the import guard says it). Read from torch's sources: 2.4.0 added
# ``add_safe_globals`` (objects only); 2.6.0 accepts the ``(object, 'module.name')`` pairs the checkpoint
# allow-list registers (2.5 fails on them at the first ``torch.load``) and makes ``weights_only=True`` the
# ``torch.load`` default that the allow-list is for.
FLOOR_REASONS = {
    'torch': 'safe checkpoint loading registers (object, name) pairs with '
             'torch.serialization.add_safe_globals, which torch accepts from 2.6 on',
}


# mmdeploy is optional: ``compat/mmdeploy.py`` makes this release export on torch >= 2.9. It is installed
# with --no-deps (its pins, protobuf<=3.20.2 among them, would downgrade what onnx needs), plus the
# small packages it imports that the stack lacks (the ``mmdeploy`` extra of setup.py).
MMDEPLOY_VERSION = '1.3.1'
MMDEPLOY_DEPS = ('aenum', 'prettytable', 'terminaltables', 'multiprocess')
MMDEPLOY_INSTALL = (f'pip install --no-deps mmdeploy=={MMDEPLOY_VERSION} && '
                    f"pip install {' '.join(MMDEPLOY_DEPS)}")


def requirement(package: str) -> str:
    """The pip requirement string of a supported package, e.g. ``'mmcv>=2.0.0,<2.2.0'``."""
    for name, low, high in SUPPORTED:
        if name == package:
            return f'{name}>={low}' + (f',<{high}' if high else '')
    raise KeyError(package)
