"""Read EfficientViT checkpoints of every released layout and convert them to the backbone's.

Sources: a local file, an http(s) URL, an ``efficientvit://`` name of the official model zoo, or an
``hf-hub:<repo>[@<revision>]`` id of the Hugging Face Hub (timm's releases, via huggingface_hub's cache).

Layouts (detected from the keys, one log line per conversion applied):

* official ImageNet release (``{'model': ...}``, ``patch_embed.0.c``, ``blocks1`` ..., classifier
  ``head``/``head_dist``, ``attention_bias_idxs`` buffers): our names already, drop the extras;
* timm (``patch_embed.conv1.conv``, ``stages.{s}.downsample/blocks``): renamed;
* an mmdet detector (``state_dict`` with ``backbone.`` keys, e.g. the official mmdet 2.x COCO
  release): the backbone part is taken, neck and heads ignored;
* our deployed layout (BN folded: ``c.bias``, no ``bn``): loads into ``deploy=True`` backbones.

Attention-bias tables of another window size are resized bicubically (as the official detection
code does with the 4×4 stage-3 tables of the ImageNet models). Anything that would leave a
backbone weight at its random init raises with the mismatching keys and the arch the checkpoint
looks like.
"""
import os
import pickle
import re
import urllib.error
from collections import Counter
from typing import Dict, Iterable, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from ...errors import CheckpointError
from ...model_zoo import HF_HUB_SCHEME, SCHEME, hub_checkpoint, imagenet_checkpoint, resolve

StateDict = Dict[str, torch.Tensor]

TIMM_HUB_PREFIX = 'timm/'  # a bare timm hub id, as earlier versions took it: same as hf-hub:timm/...
# The file timm loads from a hub repo: the first one the repo has.
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


def _short(err: BaseException) -> str:
    """``Type: first sentence`` of an error (torch's multi-line advice stays out)."""
    lines = str(err).strip().splitlines()
    first = lines[0].split('. ')[0].rstrip('.') if lines else ''
    return f'{type(err).__name__}: {first}' if first else type(err).__name__


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


def _download(url: str) -> str:
    """Download ``url`` into torch.hub's cache (reused when present) and return the local path."""
    cache_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    path = os.path.join(cache_dir, os.path.basename(url.split('?')[0]) or 'checkpoint.pth')
    if not os.path.exists(path):
        os.makedirs(cache_dir, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=False)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise CheckpointError(
                f'Could not download the checkpoint {url} ({_short(err)}). Download it where '
                f'there is network access and use the local file instead: '
                f"init_cfg=dict(type='Pretrained', checkpoint='/path/to/{os.path.basename(path)}')"
            ) from None
    return path


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


def register_checkpoint_schemes() -> None:
    """Let mmengine's ``CheckpointLoader`` (``load_from``, ``load_checkpoint``, ``PretrainedInit``) read
    ``efficientvit://`` names and ``hf-hub:`` ids (returned as stored: timm's layout for the latter)."""
    from mmengine.runner import CheckpointLoader

    def load_from_model_zoo(filename: str, map_location=None):
        return CheckpointLoader.load_checkpoint(resolve(filename), map_location=map_location)

    def load_from_hf_hub(filename: str, map_location=None):  # CPU tensors; load_state_dict moves them
        return read_checkpoint(filename)

    CheckpointLoader.register_scheme(SCHEME, load_from_model_zoo, force=True)
    CheckpointLoader.register_scheme(HF_HUB_SCHEME, load_from_hf_hub, force=True)


def read_checkpoint(source: str) -> dict:
    """Load a local path, an http(s) URL, an ``efficientvit://`` name or an ``hf-hub:`` id;
    ``.pth``/``.bin`` or ``.safetensors``."""
    if source.startswith(SCHEME):
        source = resolve(source)
    if source.startswith(('http://', 'https://')):
        path = _download(source)
    elif source.startswith(HF_HUB_SCHEME) or (source.startswith(TIMM_HUB_PREFIX)
                                              and not os.path.exists(source)):
        path = _hub_weights(source)
    else:
        path = os.path.expanduser(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'Checkpoint file not found: {source}')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            checkpoint = load_file(path, device='cpu')
        else:
            checkpoint = torch.load(path, map_location='cpu')
    except Exception as err:  # torch/safetensors raise many types for a bad file
        raise _unreadable(source, path, err) from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} is not a checkpoint: it holds a {type(checkpoint).__name__}, '
                              f'not a dict of tensors')
    return checkpoint


def _strip(state_dict: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


_TIMM_RULES = [
    (re.compile(r'^patch_embed\.conv(\d)\.'), lambda m: f'patch_embed.{2 * (int(m[1]) - 1)}.'),
    (re.compile(r'^stages\.0\.blocks\.(\d+)\.'), lambda m: f'blocks1.{m[1]}.'),
    (re.compile(r'^stages\.(\d)\.downsample\.res1\.'), lambda m: f'blocks{int(m[1]) + 1}.0.'),
    (re.compile(r'^stages\.(\d)\.downsample\.patchmerge\.'), lambda m: f'blocks{int(m[1]) + 1}.1.'),
    (re.compile(r'^stages\.(\d)\.downsample\.res2\.'), lambda m: f'blocks{int(m[1]) + 1}.2.'),
    (re.compile(r'^stages\.(\d)\.blocks\.(\d+)\.'),
     lambda m: f'blocks{int(m[1]) + 1}.{int(m[2]) + 3}.'),
]


def timm_to_official(state_dict: StateDict) -> StateDict:
    """Rename timm's ``efficientvit_msra`` keys to the official (= our) names."""
    converted = {}
    for key, value in state_dict.items():
        for pattern, repl in _TIMM_RULES:
            key, n = pattern.subn(repl, key)
            if n:
                break
        # timm's ConvNorm children are conv/bn, the official Conv2d_BN's c/bn; head.linear → head.l
        key = re.sub(r'\.conv\.(weight|bias)$', r'.c.\1', key)
        key = re.sub(r'^head\.linear\.', 'head.l.', key)
        converted[key] = value
    return converted


def is_deployed_state_dict(state_dict: StateDict) -> bool:
    """BN-folded (our deployed) layout: convs with bias and no BatchNorm entries."""
    return any(k.endswith('.c.bias') for k in state_dict) and not any('.bn.' in k for k in state_dict)


def load_backbone_state_dict(source: str, prefix: Optional[str] = None) -> StateDict:
    """Read ``source`` and return its backbone weights under our names (logging each conversion)."""
    checkpoint = read_checkpoint(source)
    notes: List[str] = []
    if 'state_dict' in checkpoint and isinstance(checkpoint['state_dict'], dict):
        state_dict, container = checkpoint['state_dict'], "'state_dict'"
    elif 'model' in checkpoint and isinstance(checkpoint['model'], dict):
        state_dict, container = checkpoint['model'], "'model'"
    else:
        state_dict, container = checkpoint, None
    state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = _strip(state_dict, 'module.')
    if prefix:
        state_dict = _strip(state_dict, prefix)
        notes.append(f'took the keys under prefix {prefix!r}')
    elif any(k.startswith('backbone.') for k in state_dict):
        others = sum(not k.startswith('backbone.') for k in state_dict)
        state_dict = _strip(state_dict, 'backbone.')
        notes.append(f"mmdet detector checkpoint: took {len(state_dict)} 'backbone.' keys, "
                     f'ignored {others} neck/head keys')
    if any(k.startswith(('stages.', 'patch_embed.conv1.')) for k in state_dict):
        state_dict = timm_to_official(state_dict)
        notes.append(f"converted {len(state_dict)} keys from timm's layout")
    elif container == "'model'":
        notes.append("official ImageNet release layout ('model' key)")
    dropped = Counter()
    for key in list(state_dict):
        if key.startswith(('head.', 'head_dist.')):
            dropped['classifier head keys'] += 1
        elif key.endswith('attention_bias_idxs'):
            dropped['attention_bias_idxs buffers'] += 1
        else:
            continue
        del state_dict[key]
    if dropped:
        notes.append('dropped ' + ', '.join(f'{n} {what}' for what, n in dropped.items()))
    if is_deployed_state_dict(state_dict):
        notes.append('deployed (BN-folded) layout')
    for note in notes:
        print_log(f'EfficientViT checkpoint {source}: {note}', logger='current')
    return state_dict


def resize_attention_biases(state_dict: StateDict, target: StateDict) -> Counter:
    """Bicubically resize ``attention_biases`` tables whose window differs from ``target``'s.

    Same as the official detection code: view (heads, R·R) as a heads×R×R image,
    ``F.interpolate(mode='bicubic', align_corners=False)`` to the new side. Returns a count per
    (old side, new side).
    """
    resized: Counter = Counter()
    for key, table in state_dict.items():
        if not key.endswith('attention_biases') or key not in target:
            continue
        (heads, old), (new_heads, new) = table.shape, target[key].shape
        side_old, side_new = round(old ** 0.5), round(new ** 0.5)
        if heads != new_heads or old == new or side_old ** 2 != old or side_new ** 2 != new:
            continue
        image = table.detach().float().reshape(1, heads, side_old, side_old)
        image = F.interpolate(image, size=(side_new, side_new), mode='bicubic', align_corners=False)
        state_dict[key] = image.reshape(heads, new).to(table.dtype)
        resized[(side_old, side_new)] += 1
    return resized


def _indices(keys: Iterable[str], pattern: str) -> List[int]:
    regex = re.compile(pattern)
    return sorted({int(m[1]) for k in keys for m in [regex.match(k)] if m})


NO_EFFICIENTVIT = 'no EfficientViT backbone'


def describe_arch(state_dict: StateDict, arch_zoo: Dict[str, dict]) -> str:
    """Name the arch a (converted) state_dict looks like: 'EfficientViT-M4', a custom one, or not."""
    try:
        dims = [state_dict['patch_embed.6.c.weight'].shape[0]]
        for s in (2, 3):
            dims.append(state_dict[f'blocks{s}.1.conv3.c.weight'].shape[0])
    except KeyError:
        # BatchNorm counters say nothing of the model (and safetensors files often list them first)
        sample = ', '.join([k for k in state_dict if not k.endswith('num_batches_tracked')][:3])
        sample = sample or ', '.join(list(state_dict)[:3]) or 'no tensors'
        return f'{NO_EFFICIENTVIT} (first keys: {sample})'
    depths = [len(_indices(state_dict, r'^blocks1\.(\d+)\.'))]
    depths += [len([i for i in _indices(state_dict, rf'^blocks{s}\.(\d+)\.') if i >= 3])
               for s in (2, 3)]
    heads = [len(_indices(state_dict, rf'^blocks{s}\.{0 if s == 1 else 3}\.mixer\.m\.attn\.qkvs\.(\d+)\.'))
             for s in (1, 2, 3)]
    for name, settings in arch_zoo.items():
        if (settings['embed_dims'], settings['depths'], settings['num_heads']) == (dims, depths, heads):
            return f'EfficientViT-{name.upper()}'
    return f'an EfficientViT with embed_dims={dims}, depths={depths}, num_heads={heads}'


def _listing(title: str, items: List[str], limit: int = 8) -> str:
    more = f' … (+{len(items) - limit} more)' if len(items) > limit else ''
    return f'{len(items)} {title}: {", ".join(items[:limit])}{more}'


def model_state_dict(checkpoint: dict) -> StateDict:
    """The tensors a model loads from ``checkpoint``, as mmengine's ``load_checkpoint`` takes them
    (``state_dict`` if present, a ``module.`` prefix of DDP dropped), or the official ImageNet
    release's ``model`` (which mmengine would not find: for explaining a mismatch)."""
    state_dict = checkpoint.get('state_dict', checkpoint.get('model', checkpoint))
    state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = _strip(state_dict, 'module.')
    return state_dict


def explain_detector_mismatch(model: nn.Module, state_dict: StateDict, arch_zoo: Dict[str, dict],
                              limit: int = 3) -> str:
    """A few lines on why ``state_dict`` does not fit ``model`` (a detector): counts of missing,
    unexpected and mis-shaped keys with a few examples each, and the arch of both backbones."""
    target = model.state_dict()
    missing = [k for k in target if k not in state_dict and not k.endswith('num_batches_tracked')]
    # the official bias-index buffers are checked by the backbone itself (EfficientViT accepts them)
    unexpected = [k for k in state_dict if k not in target and not k.endswith('attention_bias_idxs')]
    misshaped = [f'{k} {tuple(v.shape)} vs {tuple(target[k].shape)}' for k, v in state_dict.items()
                 if k in target and v.shape != target[k].shape]
    problems = [_listing(title, items, limit) for title, items in
                (('mis-shaped keys (checkpoint vs model)', misshaped), ('missing keys', missing),
                 ('unexpected keys', unexpected)) if items]
    archs = ''
    if any(k.startswith('backbone.') for k in state_dict):
        found = describe_arch(_strip(state_dict, 'backbone.'), arch_zoo)
        wanted = describe_arch(_strip(target, 'backbone.'), arch_zoo)
        if found != wanted:
            archs = f'the checkpoint\'s backbone looks like {found}, the config builds {wanted}. '
    elif describe_arch(state_dict, arch_zoo).startswith('EfficientViT-'):
        archs = (f'it holds an {describe_arch(state_dict, arch_zoo)} backbone alone (an ImageNet '
                 'checkpoint), not a detector: it initialises the backbone '
                 "(init_cfg=dict(type='Pretrained', checkpoint=...)) for training. ")
    return archs + '; '.join(problems) + '.'


def load_state_dict_checked(model: nn.Module, state_dict: StateDict, source: str,
                            arch_zoo: Dict[str, dict], arch_name: str) -> None:
    """Resize bias tables, then load strictly; raise with a diagnosis if anything mismatches."""
    state_dict = dict(state_dict)
    target = model.state_dict()
    for (old, new), n in resize_attention_biases(state_dict, target).items():
        print_log(f'EfficientViT checkpoint {source}: resized {n} attention_biases tables from '
                  f'{old}x{old} to {new}x{new} windows (bicubic)', logger='current')
    for key in target:  # safetensors exports often omit BN's counters, which inference never reads
        bn = key[:-len('num_batches_tracked')]
        if (key.endswith('num_batches_tracked') and key not in state_dict
                and bn + 'running_mean' in state_dict):
            state_dict[key] = target[key]
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    misshaped = [f'{k} {tuple(v.shape)} vs {tuple(target[k].shape)}' for k, v in state_dict.items()
                 if k in target and v.shape != target[k].shape]
    if missing or unexpected or misshaped:
        problems = [_listing(title, items) for title, items in
                    (('missing keys', missing), ('unexpected keys', unexpected),
                     ('mis-shaped keys (checkpoint vs model)', misshaped)) if items]
        hint = ''
        if is_deployed_state_dict(state_dict) and not is_deployed_state_dict(target):
            hint = ' It is a deployed (BN-folded) checkpoint: build the backbone with deploy=True.'
        looks_like = describe_arch(state_dict, arch_zoo)
        if not looks_like.startswith(NO_EFFICIENTVIT):
            fix = ' Use the checkpoint of the same arch (or set arch= to match it).'
        elif arch_name.lower() in arch_zoo:
            fix = (f' Use an EfficientViT-{arch_name} checkpoint: {imagenet_checkpoint(arch_name)} or '
                   f'{hub_checkpoint(arch_name)}.')
        else:
            fix = ' Use an EfficientViT checkpoint of this arch.'
        raise CheckpointError(
            f'Checkpoint {source} does not fit the EfficientViT-{arch_name} backbone: it looks '
            f'like {looks_like}. ' + '; '.join(problems) + '.' + hint + fix)
    model.load_state_dict(state_dict, strict=True)
