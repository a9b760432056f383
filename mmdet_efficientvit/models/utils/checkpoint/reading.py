"""Read a checkpoint file, safely, from wherever it is named: the I/O of checkpoint loading.

Sources: a local file, an http(s) URL, an ``efficientvit://`` name of the official model zoo, or an
``hf-hub:<repo>[@<revision>]`` id of the Hugging Face Hub (timm's releases, via huggingface_hub's
cache); ``.pth``/``.bin`` or ``.safetensors``. The three remote kinds are schemes of mmengine's
``CheckpointLoader`` (:func:`setup_checkpoint_loading`), so ``load_from``, ``load_checkpoint`` and
``init_cfg=dict(type='Pretrained')`` read them the same way.

Everything is read with ``torch.load(weights_only=True)``, which never runs code from a file, plus
an allow-list of the few globals mmengine/mmdet training checkpoints pickle. Our http(s) loader
replaces mmengine's ``load_from_http``, whose ``torch.hub.load_state_dict_from_url`` loads with
``weights_only=False``; it downloads into the same torch.hub cache. A file that cannot be read is
one line naming it and the fix.
"""
import os
import pickle
import re
import sys
import urllib.error
import urllib.parse
from typing import Any, Callable, List, Tuple, Union

import torch

from ....errors import CheckpointError
from ....model_zoo import HF_HUB_SCHEME, SCHEME, hub_checkpoint, resolve

TIMM_HUB_PREFIX = 'timm/'  # a bare timm hub id, as earlier versions took it: same as hf-hub:timm/...
# The file timm loads from a hub repo: the first one the repo has.
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def _short(err: BaseException) -> str:
    """``Type: first sentence`` of an error (torch's multi-line advice stays out)."""
    lines = str(err).strip().splitlines()
    first = lines[0].split('. ')[0].rstrip('.') if lines else ''
    return f'{type(err).__name__}: {first}' if first else type(err).__name__


# --------------------------------------------------------------------------- safe loading

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
    """Register :func:`checkpoint_safe_globals` with ``torch.serialization`` (idempotent), so that
    PyTorch >= 2.6 reads mmengine/mmdet training checkpoints with ``weights_only=True``."""
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

    def torch_load(file, map_location=None, weights_only=None):
        return torch.load(file, map_location=map_location, weights_only=weights_only)

    checkpoint._safe_torch_load = torch_load


# What torch's weights_only unpickler says about a global it refuses ("... GLOBAL builtins.print was
# not an allowed global ...", possibly inside its longer "Weights only load failed" message).
_REFUSED_GLOBAL = re.compile(r'GLOBAL ([\w.]+) was not an allowed global')


def _unreadable(source: str, path: str, err: BaseException) -> CheckpointError:
    """The one-line reason ``torch.load`` (weights_only) could not read ``path``.

    Two cases: the file holds Python objects that safe loading refuses to build (torch names the
    global; our allow-list's own refusals are UnpicklingErrors too), or it is no complete PyTorch file
    at all (garbage, empty, truncated download). Neither is fixed by loading unsafely, so the message
    never suggests ``weights_only=False``.
    """
    text = f'{err}\n{err.__context__ or ""}'
    refused = _REFUSED_GLOBAL.search(text)
    if refused or 'refusing getattr' in text:
        what = f'global {refused.group(1)}' if refused else text.split('refusing ')[1].split(' while')[0]
        return CheckpointError(
            f'{source} contains Python objects that safe loading refuses ({what}). Checkpoints are read '
            'with torch.load(weights_only=True), which never runs code from a file; use a checkpoint '
            'written by mmengine/mmdet training or a torch.save() of tensors (a state_dict)')
    size = os.path.getsize(path)
    detail = ('an empty file' if size == 0 else
              'no pickle that torch reads' if isinstance(err, pickle.UnpicklingError) else _short(err))
    return CheckpointError(
        f'{source} is not a readable checkpoint: not a PyTorch or safetensors file, or a truncated one '
        f'({size} bytes, {detail}). Check the path, or download / copy the file again')


def _read_file(source: str, path: str) -> Any:
    """The object stored in the local file ``path`` (named ``source`` in errors), on the CPU."""
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            return load_file(path, device='cpu')
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch/safetensors raise many types for a bad file
        raise _unreadable(source, path, err) from None


# --------------------------------------------------------------------------- remote sources

def load_from_http(url: str, map_location=None) -> Any:
    """An http(s) URL, downloaded once into torch.hub's cache (``<hub dir>/checkpoints``, where
    mmengine's and torch's loaders keep it too) and read safely; CPU tensors."""
    cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    path = os.path.join(cache_dir, os.path.basename(urllib.parse.urlparse(url).path) or 'checkpoint.pth')
    if not os.path.exists(path):
        os.makedirs(cache_dir, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=sys.stderr.isatty())
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise CheckpointError(
                f'Could not download the checkpoint {url} ({_short(err)}). Download it where '
                f'there is network access and use the local file instead: '
                f"init_cfg=dict(type='Pretrained', checkpoint='/path/to/{os.path.basename(path)}')"
            ) from None
    return _read_file(url, path)


def load_from_model_zoo(name: str, map_location=None) -> Any:
    """An ``efficientvit://`` name: its URL in the official model zoo, read by the http(s) scheme."""
    from mmengine.runner import CheckpointLoader
    return CheckpointLoader.load_checkpoint(resolve(name), map_location=map_location)


def _hub_weights(source: str) -> str:
    """Path of a Hugging Face Hub repo's weights in huggingface_hub's cache, downloaded if missing.

    ``source`` is ``hf-hub:<repo>[@<revision>]`` as timm names it (a bare ``timm/<model>`` also works).
    The file is the one timm loads: ``model.safetensors``, else ``pytorch_model.bin``. The cache and
    offline mode are huggingface_hub's own (``HF_HUB_CACHE`` / ``HF_HOME``, ``HF_HUB_OFFLINE=1``).
    """
    repo_id, _, revision = source.removeprefix(HF_HUB_SCHEME).partition('@')
    try:
        from huggingface_hub import constants, hf_hub_download
        from huggingface_hub.errors import (EntryNotFoundError, LocalEntryNotFoundError,
                                            RepositoryNotFoundError, RevisionNotFoundError)
    except ImportError:
        raise CheckpointError(f'{source} needs the huggingface_hub package: pip install huggingface_hub'
                              ) from None
    revision = revision or None
    releases = hub_checkpoint('m{0..5}')
    try:
        try:
            return hf_hub_download(repo_id, HUB_WEIGHT_FILES[0], revision=revision)
        except EntryNotFoundError as err:  # not in the repo, or (offline) not in the cache
            return hf_hub_download(repo_id, HUB_WEIGHT_FILES[1], revision=revision,
                                   local_files_only=isinstance(err, LocalEntryNotFoundError))
    except LocalEntryNotFoundError:  # offline, or no network, and no cached copy
        offline = ' (HF_HUB_OFFLINE is set)' if constants.HF_HUB_OFFLINE else ''
        rev = f' --revision {revision}' if revision else ''
        reason = (f'is not in the Hugging Face cache at {constants.HF_HUB_CACHE}{offline} and could not '
                  f'be downloaded: connect, or run `hf download {repo_id} {HUB_WEIGHT_FILES[0]}{rev}` '
                  'where there is network and point HF_HUB_CACHE at (a copy of) that cache')
    except RevisionNotFoundError:
        reason = (f'has no revision {revision!r} on the Hugging Face Hub: use a branch, tag or commit '
                  f'of {repo_id}')
    except RepositoryNotFoundError:  # also gated / private repos without a login
        reason = ('is no Hugging Face Hub repo you can read (check the id, or log in with `hf auth '
                  f'login`); the EfficientViT releases are {releases}')
    except EntryNotFoundError:
        reason = (f'holds neither {" nor ".join(HUB_WEIGHT_FILES)}: it is no timm model repo; the '
                  f'EfficientViT releases are {releases}')
    except Exception as err:  # network, authentication and id-format errors end here
        reason = (f'could not be fetched from the Hugging Face Hub ({_short(err)}): check the id and '
                  f'the network, or download the file and use its local path')
    raise CheckpointError(f'{source} {reason}')


def load_from_hf_hub(source: str, map_location=None) -> Any:
    """An ``hf-hub:`` id (or a bare ``timm/`` one), as stored (timm's layout); CPU tensors."""
    return _read_file(source, _hub_weights(source))


def setup_checkpoint_loading() -> None:
    """Make every checkpoint read of the process safe and ours: the allow-list, no unsafe fallback on
    onedl-mmengine, and the ``http(s)://``, ``efficientvit://`` and ``hf-hub:`` schemes of mmengine's
    ``CheckpointLoader`` (called once, when the package is imported)."""
    from mmengine.runner import CheckpointLoader
    allow_checkpoint_globals()
    refuse_unsafe_fallback()
    CheckpointLoader.register_scheme(('http://', 'https://'), load_from_http, force=True)
    CheckpointLoader.register_scheme(SCHEME, load_from_model_zoo, force=True)
    CheckpointLoader.register_scheme(HF_HUB_SCHEME, load_from_hf_hub, force=True)


def read_checkpoint(source: str) -> dict:
    """The checkpoint dict at a local path, or at a URL / ``efficientvit://`` / ``hf-hub:`` name
    (through mmengine's ``CheckpointLoader``); CPU tensors. Raises one-line errors."""
    if source.startswith(HF_HUB_SCHEME) or '://' in source:
        from mmengine.runner import CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint(source, map_location='cpu')
    elif source.startswith(TIMM_HUB_PREFIX) and not os.path.exists(source):
        checkpoint = load_from_hf_hub(source)
    else:
        path = os.path.expanduser(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Checkpoint file not found: {source}')
        checkpoint = _read_file(source, path)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} is not a checkpoint: it holds a {type(checkpoint).__name__}, '
                              f'not a dict of tensors')
    return checkpoint
