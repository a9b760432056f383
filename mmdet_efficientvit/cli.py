"""Command-line glue that the tools share beyond mmdet's CLI: set-up mistakes reported in one short
message instead of a traceback, config loading with mmdet's options, and distributed runs on machines
without CUDA."""
import argparse
import gc
import json
import os
import os.path as osp
import re
import sys
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, DictAction

from .errors import CheckpointError, ConfigError, SetupError
from .resources import load_config

# Errors whose message already says what is wrong and how to fix it (a missing file is named by its
# path): the tools print only the message.
USER_ERRORS = (SetupError, CheckpointError, ConfigError, FileNotFoundError)
# What mmcv's LoadImageFromFile asserts for an image file that does not decode.
_MMCV_UNREADABLE_IMAGE = re.compile(r'^failed to load image: (.+)$', re.M)


def user_message(err: BaseException) -> str:
    """The message of a user error; for one raised in a DataLoader worker (which torch re-raises
    with the worker's traceback in the message), the original message alone."""
    text = str(err)
    kind, module = type(err).__qualname__, type(err).__module__
    marker = f'{kind}: ' if module == 'builtins' else f'{module}.{kind}: '  # as tracebacks print it
    if text.startswith(f'Caught {type(err).__name__} in DataLoader worker') and marker in text:
        text = text.rpartition(marker)[2]
    return text.strip()


@contextmanager
def short_errors(cfg: Optional[Config] = None, exit_code: int = 1) -> Iterator[None]:
    """Print known set-up errors as ``error: <message>`` and exit with ``exit_code`` (1; 2 for a tool
    whose whole input is its command line, as argparse exits); let real bugs keep their traceback.

    With ``cfg``, a ``ConfigError`` names the config file, and a ``JSONDecodeError`` (pycocotools and
    mmdet do not say which file) becomes one such message naming the annotation file that does not
    parse. mmcv's assertion on an undecodable image (evaluation pipelines) becomes one naming it.
    """
    try:
        yield
    except USER_ERRORS as e:
        where = f'{cfg.filename}: ' if isinstance(e, ConfigError) and cfg is not None else ''
        print(f'error: {where}{user_message(e)}', file=sys.stderr)
        sys.exit(exit_code)
    except json.JSONDecodeError as e:
        broken = broken_annotation_file(cfg, e) if cfg is not None else None
        if broken is None:
            raise
        print(f'error: {broken}', file=sys.stderr)
        sys.exit(1)
    except AssertionError as e:  # mmcv's LoadImageFromFile on an undecodable image (evaluation)
        unreadable = _MMCV_UNREADABLE_IMAGE.search(user_message(e))
        if unreadable is None:
            raise
        print(f'error: cannot decode image {unreadable.group(1)}; evaluation reads every image of the '
              'annotation file: restore the file, or remove its entry from the annotation file',
              file=sys.stderr)
        sys.exit(1)


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


def _innermost_dataset(cfg: dict) -> dict:
    while 'dataset' in cfg:  # RepeatDataset, ClassBalancedDataset, ...
        cfg = cfg['dataset']
    return cfg


def annotation_files(cfg: Config) -> List[str]:
    """The annotation files a config reads: each dataloader's ``ann_file`` (under its ``data_root``)
    and each evaluator's."""
    files = []
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        ds = _innermost_dataset(loader['dataset']) if loader else {}
        if ds.get('ann_file'):
            files.append(osp.join(ds.get('data_root') or '', ds['ann_file']))
        evaluator = cfg.get(f'{split}_evaluator')
        if isinstance(evaluator, dict) and evaluator.get('ann_file'):
            files.append(evaluator['ann_file'])
    return list(dict.fromkeys(files))


def broken_annotation_file(cfg: Config, err: json.JSONDecodeError) -> Optional[str]:
    """Which of the config's annotation files fails to parse (``err`` has the text, not the name),
    with the parser's line and column; None if all parse. Files of the text's size are tried first."""
    size = len(err.doc.encode())
    candidates = [f for f in annotation_files(cfg) if osp.isfile(f)]
    for path in sorted(candidates, key=lambda f: osp.getsize(f) != size):
        try:
            with open(path, encoding='utf-8') as f:
                json.load(f)
        except json.JSONDecodeError as e:
            return (f'annotation file {path} is not valid JSON: {e.msg} (line {e.lineno}, column '
                    f'{e.colno}). Repair it, or download / generate it again')
        except (OSError, UnicodeDecodeError):
            continue
    return None


def check_data_paths(cfg: Config, splits: Sequence[str]) -> None:
    """Fail fast, before any model is built, when a dataset the run needs is not on disk.

    ``splits`` are prefixes such as ``'train'``, ``'val'``, ``'test'``: ``<split>_dataloader`` (its
    annotation file and image folder) and ``<split>_evaluator`` (its ``ann_file``) are checked.
    """
    missing, overrides, roots = [], [], set()
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        ds = _innermost_dataset(loader['dataset'])
        root = ds.get('data_root') or ''
        roots.add(root)
        overrides.append(f'{split}_dataloader.dataset.data_root=/path/to/data/')
        for rel in (ds.get('ann_file'), (ds.get('data_prefix') or {}).get('img')):
            if rel and not osp.exists(osp.join(root, rel)):
                missing.append(osp.join(root, rel))
        evaluator = cfg.get(f'{split}_evaluator')
        ann = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
        if ann:
            rel = ann[len(root):] if root and ann.startswith(root) else osp.basename(ann)
            overrides.append(f'{split}_evaluator.ann_file=/path/to/data/{rel}')
            if not osp.exists(ann):
                missing.append(ann)
    if not missing:
        return
    raise SetupError(
        f'dataset file not found: {missing[0]}'
        + (f' (and {len(missing) - 1} more)' if len(missing) > 1 else '') + '.\n'
        f'This config reads its data under data_root {", ".join(map(repr, sorted(roots)))} '
        f'(relative to the current directory {os.getcwd()}); for COCO 2017 that folder holds '
        'annotations/instances_train2017.json, annotations/instances_val2017.json, train2017/ and '
        'val2017/.\nPut (or symlink) the dataset there, e.g. `ln -s /path/to/coco data/coco`, or '
        'point the config elsewhere with\n  --cfg-options ' + ' '.join(overrides))


def setup_cpu_distributed(cfg: Config) -> None:
    """Make ``--launcher pytorch`` work without CUDA: gloo process group and a device-less DDP.

    mmengine 0.10 initialises the process group through ``torch.cuda.set_device`` and wraps the model
    with ``device_ids=[LOCAL_RANK]``; both need a GPU. On a CPU-only machine we create the gloo group
    ourselves (mmengine then skips its own initialisation) and let DDP run on CPU tensors.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')
    cfg.env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel',
                                                   broadcast_buffers=False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def teardown_distributed() -> None:
    """End a finished distributed run: collect what is left of the model, meet, leave the group.

    Call it after the last reference to the runner is dropped. A DDP wrapper still alive when the
    process group is destroyed (its reducer keeps the gloo context) aborts the rank at interpreter
    shutdown now and then ("terminate called without an active exception", seen with torch 2.14 and
    gloo on CPU; never once the wrapper is released first), which torchrun reports as a failed job.
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gc.collect()
    torch_dist.barrier()
    torch_dist.destroy_process_group()
