"""The configs and tools this package ships: where they are, and loading a config by any name.

The repository's ``configs/`` and ``tools/`` (and ``model-index.yml``) travel with the package the way
OpenMMLab packages ship them: an installed wheel holds copies under ``mmdet_efficientvit/.mim/``, an
editable install links them there, and a plain checkout has them beside the package. The functions below
work in all three::

    from mmdet_efficientvit.resources import config_path, configs_dir, tools_dir
    config_path('retinanet_evit_m4_fpn_1x_coco.py')       # absolute path of a shipped config
    config_path('mmdet_efficientvit::demo/retinanet_evit_demo_shapes.py')  # same, mmengine-style name
    tools_dir()                                            # train.py, test.py, demo.py, ...

The ``mmdet-efficientvit`` command runs the shipped tools (``mmdet-efficientvit train CONFIG ...``).
"""
import os.path as osp

from mmengine.config import Config

PACKAGE = 'mmdet_efficientvit'
PACKAGE_DIR = osp.dirname(osp.abspath(__file__))
# Where the shipped files are in an installed wheel (and where mmengine looks for ``PACKAGE::`` configs).
MIM_DIR = osp.join(PACKAGE_DIR, '.mim')
PREFIX = f'{PACKAGE}::'


def shipped_path(name: str) -> str:
    """``.mim/<name>`` of an installed (or editable) package, else ``<name>`` of the checkout."""
    for base in (MIM_DIR, osp.dirname(PACKAGE_DIR)):
        path = osp.join(base, name)
        if osp.exists(path):
            return path
    raise FileNotFoundError(
        f'{name} of mmdet-efficientvit not found in {MIM_DIR} or beside the package: reinstall the '
        'package (`pip install mmdet-efficientvit-*.whl`, or `pip install -e .` in a checkout)')


def configs_dir() -> str:
    """The folder of the shipped configs (``configs/`` of the repository)."""
    return shipped_path('configs')


def tools_dir() -> str:
    """The folder of the shipped tools (``tools/`` of the repository: train.py, test.py, ...)."""
    return shipped_path('tools')


def config_path(name: str) -> str:
    """The absolute path of a shipped config, named by its path under ``configs/`` (``.py`` optional,
    ``mmdet_efficientvit::`` prefix allowed): ``'retinanet_evit_m4_fpn_1x_coco.py'``,
    ``'demo/retinanet_evit_demo_shapes'``."""
    rel = name[len(PREFIX):] if name.startswith(PREFIX) else name
    rel = rel if rel.endswith('.py') else rel + '.py'
    path = osp.join(configs_dir(), rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no shipped config {name!r} (looked for {path})')
    return path


def register_config_scope() -> None:
    """Let mmengine resolve ``mmdet_efficientvit::<folder>/<config>.py`` in ``_base_`` and
    ``mmengine.hub.get_config`` (it accepts only the packages in its ``MODULE2PACKAGE`` table).

    mmengine 0.10 finds ``<package>/.mim/`` with ``get_installed_path(MODULE2PACKAGE[scope])``, which
    takes a distribution's location (site-packages, wrong for an editable install) and falls back to the
    module's own folder (``importlib.util.find_spec``) for a name that is no distribution. The entry names
    our ``resources`` module so that the folder is always the real one: an installed wheel's or the
    checkout's. (mmengine also wants a folder in the name: ``pkg::name.py`` alone does not parse.)
    """
    from mmengine.config.utils import MODULE2PACKAGE
    MODULE2PACKAGE.setdefault(PACKAGE, __name__)


def load_config(config: str) -> Config:
    """Load a config file or a shipped config by name: ``mmdet_efficientvit::...`` is one of ours
    (:func:`config_path`), ``mmdet::retinanet/...`` one shipped with another installed package."""
    if config.startswith(PREFIX):
        return Config.fromfile(config_path(config))
    if '::' in config:
        from mmengine.hub import get_config
        return get_config(config)
    return Config.fromfile(config)
