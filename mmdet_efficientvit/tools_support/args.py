"""Tool arguments and what they give: the options train.py and test.py share, the config they
load with those options applied, and input sizes written on the command line."""
import argparse
import os
import os.path as osp
import re
from typing import Sequence, Tuple, Union

from mmengine.config import Config, DictAction

from ..resources import load_config

SizeLike = Union[int, str, Sequence[int]]


def parse_common_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add the options train.py and test.py share (``--cfg-options``, ``--launcher``,
    ``--local-rank``), parse, and export ``LOCAL_RANK`` as torch.distributed.launch users expect."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, key=value pairs merged into the config, e.g. '
        'train_dataloader.batch_size=4 or key="[a,b]" for lists (no spaces)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` with ``--cfg-options``, ``--launcher`` and the work dir applied
    (work dir priority: ``--work-dir`` > the config's > ``./work_dirs/<config name>``)."""
    cfg = load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        name = args.config.split('::')[-1]  # a shipped config's name: its file name only
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(name))[0])
    return cfg


def parse_size(size: SizeLike) -> Tuple[int, int]:
    """Parse ``224``, ``'224'``, ``'800x1216'`` or ``(800, 1216)`` into ``(height, width)``."""
    if isinstance(size, int):
        return size, size
    if isinstance(size, str):
        match = re.fullmatch(r'(\d+)(?:[x,](\d+))?', size.strip())
        if match is None:
            raise ValueError(f'cannot parse input size {size!r}: use H or HxW, e.g. 224 or 800x1216')
        h = int(match.group(1))
        return h, int(match.group(2) or h)
    size = tuple(int(s) for s in size)
    if len(size) == 1:
        return size[0], size[0]
    if len(size) != 2:
        raise ValueError(f'input size must be H or (H, W), got {size}')
    return size  # type: ignore[return-value]
