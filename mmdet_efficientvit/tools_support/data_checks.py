"""The datasets a config reads, checked before a run: missing files named with the fix, and the
annotation file that does not parse found by name."""
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.config import Config

from ..errors import SetupError


def _innermost_dataset(cfg: dict) -> dict:
    while 'dataset' in cfg:  # RepeatDataset, ClassBalancedDataset, ...
        cfg = cfg['dataset']
    return cfg


def split_data(cfg: Config, split: str) -> Tuple[Optional[str], Optional[str]]:
    """``(annotation file, image folder)`` of ``<split>_dataloader``'s dataset, each under its
    ``data_root`` as mmdet's datasets join them (None where the config gives none)."""
    loader = cfg.get(f'{split}_dataloader')
    ds = _innermost_dataset(loader['dataset']) if loader else {}
    root = ds.get('data_root') or ''
    ann, img = ds.get('ann_file'), (ds.get('data_prefix') or {}).get('img')
    return (osp.join(root, ann) if ann else None), (osp.join(root, img) if img else None)


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
        missing += [path for path in split_data(cfg, split) if path and not osp.exists(path)]
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
