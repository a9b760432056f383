"""Say why a checkpoint does not fit a model: the keys that differ and the arch it looks like.

Nothing loads partially: anything that would leave a weight at its random init raises with the
mismatching keys (a count and examples of each kind) and the EfficientViT arch the checkpoint looks like.
"""
import re
from typing import Dict, Iterable, List, Tuple

import torch.nn as nn
from mmengine.logging import print_log

from ....errors import CheckpointError
from ....model_zoo import hub_checkpoint, imagenet_checkpoint
from .layout import StateDict, is_deployed_state_dict, resize_attention_biases, strip_prefix

NO_EFFICIENTVIT = 'no EfficientViT backbone'


def _indices(keys: Iterable[str], pattern: str) -> List[int]:
    regex = re.compile(pattern)
    return sorted({int(m[1]) for k in keys for m in [regex.match(k)] if m})


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


def key_mismatch(state_dict: StateDict, target: StateDict, limit: int,
                 ignore: Tuple[str, ...] = ()) -> str:
    """``'N mis-shaped keys (checkpoint vs model): ...; N missing keys: ...; N unexpected keys: ...'``
    with up to ``limit`` examples each, '' when ``state_dict`` fits ``target``. Keys ending in one
    of ``ignore`` are not counted as missing or unexpected."""
    misshaped = [f'{k} {tuple(v.shape)} vs {tuple(target[k].shape)}' for k, v in state_dict.items()
                 if k in target and v.shape != target[k].shape]
    missing = [k for k in target if k not in state_dict and not k.endswith(ignore)]
    unexpected = [k for k in state_dict if k not in target and not k.endswith(ignore)]
    parts = []
    for title, items in (('mis-shaped keys (checkpoint vs model)', misshaped),
                         ('missing keys', missing), ('unexpected keys', unexpected)):
        if items:
            more = f' … (+{len(items) - limit} more)' if len(items) > limit else ''
            parts.append(f'{len(items)} {title}: {", ".join(items[:limit])}{more}')
    return '; '.join(parts)


def explain_detector_mismatch(model: nn.Module, state_dict: StateDict, arch_zoo: Dict[str, dict],
                              limit: int = 3) -> str:
    """A few lines on why ``state_dict`` does not fit ``model`` (a detector): counts of missing,
    unexpected and mis-shaped keys with a few examples each, and the arch of both backbones."""
    target = model.state_dict()
    # mmengine does not require BN counters; the official bias-index buffers are checked by the
    # backbone itself (EfficientViT accepts them)
    problems = key_mismatch(state_dict, target, limit,
                            ignore=('num_batches_tracked', 'attention_bias_idxs'))
    archs = ''
    if any(k.startswith('backbone.') for k in state_dict):
        found = describe_arch(strip_prefix(state_dict, 'backbone.'), arch_zoo)
        wanted = describe_arch(strip_prefix(target, 'backbone.'), arch_zoo)
        if found != wanted:
            archs = f'the checkpoint\'s backbone looks like {found}, the config builds {wanted}. '
    elif describe_arch(state_dict, arch_zoo).startswith('EfficientViT-'):
        archs = (f'it holds an {describe_arch(state_dict, arch_zoo)} backbone alone (an ImageNet '
                 'checkpoint), not a detector: it initialises the backbone '
                 "(init_cfg=dict(type='Pretrained', checkpoint=...)) for training. ")
    return archs + problems + '.'


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
    problems = key_mismatch(state_dict, target, limit=8)
    if problems:
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
            f'like {looks_like}. {problems}.{hint}{fix}')
    model.load_state_dict(state_dict, strict=True)
