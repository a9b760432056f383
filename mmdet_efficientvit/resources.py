"""The configs and tools this package ships: where they are, and loading a config by any name.

In a checkout they are the repository's ``configs/`` and ``tools/``.
"""
import os.path as osp

from mmengine.config import Config

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_config(config: str) -> Config:
    """Load a config file; ``mmdet::retinanet/...`` names a config shipped with an installed package."""
    if '::' in config:
        from mmengine.hub import get_config
        return get_config(config)
    return Config.fromfile(config)
