"""Convert the state dict of every released EfficientViT layout to the backbone's.

Layouts (detected from the keys, one log line per conversion applied):

* official ImageNet release (``{'model': ...}``, ``patch_embed.0.c``, ``blocks1`` ..., classifier
  ``head``/``head_dist``, ``attention_bias_idxs`` buffers): our names already, drop the extras;
* timm (``patch_embed.conv1.conv``, ``stages.{s}.downsample/blocks``): renamed;
* an mmdet detector (``state_dict`` with ``backbone.`` keys, e.g. the official mmdet 2.x COCO
  release): the backbone part is taken, neck and heads ignored;
* our deployed layout (BN folded: ``c.bias``, no ``bn``): loads into ``deploy=True`` backbones.

Attention-bias tables of another window size are resized bicubically (as the official detection
code does with the 4×4 stage-3 tables of the ImageNet models).
"""
import re
from collections import Counter
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from .reading import read_checkpoint

StateDict = Dict[str, torch.Tensor]

# Where the weights sit in a checkpoint dict, first match wins: mmengine/mmdet training
# (``state_dict``), the official ImageNet release (``model``), else the dict itself.
CONTAINERS = ('state_dict', 'model')


def strip_prefix(state_dict: StateDict, prefix: str) -> StateDict:
    """The entries under ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def unwrap_checkpoint(checkpoint: dict) -> Tuple[StateDict, Optional[str]]:
    """The tensors of ``checkpoint`` and the key they were found under (None: the dict itself).

    Non-tensor entries are dropped, and a ``module.`` prefix on every key (a DDP-wrapped model) too.
    """
    container = next((key for key in CONTAINERS if isinstance(checkpoint.get(key), dict)), None)
    state_dict = checkpoint[container] if container else checkpoint
    state_dict = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if state_dict and all(k.startswith('module.') for k in state_dict):
        state_dict = strip_prefix(state_dict, 'module.')
    return state_dict, container


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
    state_dict, container = unwrap_checkpoint(read_checkpoint(source))
    notes: List[str] = []
    if prefix:
        state_dict = strip_prefix(state_dict, prefix)
        notes.append(f'took the keys under prefix {prefix!r}')
    elif any(k.startswith('backbone.') for k in state_dict):
        others = sum(not k.startswith('backbone.') for k in state_dict)
        state_dict = strip_prefix(state_dict, 'backbone.')
        notes.append(f"mmdet detector checkpoint: took {len(state_dict)} 'backbone.' keys, "
                     f'ignored {others} neck/head keys')
    if any(k.startswith(('stages.', 'patch_embed.conv1.')) for k in state_dict):
        state_dict = timm_to_official(state_dict)
        notes.append(f"converted {len(state_dict)} keys from timm's layout")
    elif container == 'model':
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
