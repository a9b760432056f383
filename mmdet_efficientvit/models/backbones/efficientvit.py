"""EfficientViT backbone (Liu et al., CVPR 2023: cascaded group attention, sandwich layout).

The module tree and parameter names follow the official release (``patch_embed.{0,2,4,6}``,
``blocks1/2/3``, ``Conv2d_BN``-style ``c``/``bn`` children, ``mixer.m.attn.qkvs`` ...), so the
official ImageNet and COCO checkpoints load without renaming; timm checkpoints are converted by
:mod:`mmdet_efficientvit.models.utils.checkpoint`.

Detection inputs have any size, so window attention pads each block input to a multiple of the
window (as the official detection code does) and batches the windows. ``switch_to_deploy()``
folds every BatchNorm (and the identity of the depthwise residuals) into the convolutions.
"""
import copy
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModule
from timm.layers import SqueezeExcite
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import ConfigError
from ..utils.checkpoint import is_deployed_state_dict, load_backbone_state_dict, load_state_dict_checked

ARCH_KEYS = ('embed_dims', 'depths', 'num_heads', 'kernels', 'key_dims')
# mmengine's names for its checkpoint initialiser; ours loads through the checked converter instead.
PRETRAINED_TYPES = ('Pretrained', 'PretrainedInit')


class Conv2dBN(nn.Module):
    """Conv2d without bias followed by BatchNorm2d (``c``/``bn`` like the official ``Conv2d_BN``).

    After :meth:`fuse` (or when built with ``deploy=True``) it is a single Conv2d with bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1, bn_weight_init: float = 1., deploy: bool = False):
        super().__init__()
        self.c = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups,
                           bias=deploy)
        if deploy:
            self.bn = None
        else:
            self.bn = nn.BatchNorm2d(out_channels)
            nn.init.constant_(self.bn.weight, bn_weight_init)
            nn.init.zeros_(self.bn.bias)

    def folded_weight_bias(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Conv weight and bias with the eval-mode BatchNorm folded in, from the current tensors."""
        c, bn = self.c, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return c.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bn is None:
            return self.c(x)
        if self.bn.training:
            return self.bn(self.c(x))
        # Eval-mode BN is affine: fold it into the (small) weights on every call rather than make a
        # second pass over the (large) map. Nothing is kept, so new weights show at once; this, not a
        # cache, keeps unfused predict at its old speed (docs/backbone.md, "Unfused inference").
        c = self.c
        weight, bias = self.folded_weight_bias()
        return F.conv2d(x, weight, bias, c.stride, c.padding, c.dilation, c.groups)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the BatchNorm into the convolution in place (idempotent)."""
        if self.bn is None:
            return
        c = self.c
        weight, bias = self.folded_weight_bias()
        fused = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                          c.dilation, c.groups, bias=True, device=c.weight.device,
                          dtype=c.weight.dtype)
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        self.c, self.bn = fused, None


class Residual(nn.Module):
    """``x + m(x)`` with per-sample stochastic depth while training.

    A fused depthwise ``Conv2dBN`` ('same' padding, stride 1) can absorb the identity into its
    centre tap (``fold_identity``), which saves one full pass over the map at inference.
    """

    def __init__(self, m: nn.Module, drop_path: float = 0., deploy: bool = False):
        super().__init__()
        self.m = m
        self.drop_path = drop_path
        self.identity_folded = deploy and self._foldable(m)

    @staticmethod
    def _foldable(m: nn.Module) -> bool:
        if not isinstance(m, Conv2dBN):
            return False
        c = m.c
        return (c.in_channels == c.out_channels == c.groups and c.stride == (1, 1)
                and c.kernel_size[0] % 2 == 1 and c.padding == (c.kernel_size[0] // 2,) * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity_folded:
            return self.m(x)
        if self.training and self.drop_path > 0:
            keep = torch.rand(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype)
            keep = keep.ge_(self.drop_path).div_(1 - self.drop_path)
            return x + self.m(x) * keep
        return x + self.m(x)

    @torch.no_grad()
    def fold_identity(self) -> None:
        """Add the skip connection into a fused depthwise conv's centre tap (idempotent)."""
        if self.identity_folded or not self._foldable(self.m) or self.m.bn is not None:
            return
        k = self.m.c.kernel_size[0] // 2
        self.m.c.weight[:, 0, k, k] += 1
        self.identity_folded = True


class FFN(nn.Module):
    """Pointwise expand (Conv+BN) → ReLU → pointwise project (Conv+BN, BN weight starts at 0)."""

    def __init__(self, dim: int, hidden_dim: int, deploy: bool = False):
        super().__init__()
        self.pw1 = Conv2dBN(dim, hidden_dim, deploy=deploy)
        self.act = nn.ReLU(inplace=True)
        self.pw2 = Conv2dBN(hidden_dim, dim, bn_weight_init=0., deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class PatchMerging(nn.Module):
    """Stride-2 downsampling: 1×1 (→4C) → ReLU → 3×3/2 depthwise → ReLU → SE → 1×1 (→C_out)."""

    def __init__(self, dim: int, out_dim: int, deploy: bool = False):
        super().__init__()
        hidden_dim = dim * 4
        self.conv1 = Conv2dBN(dim, hidden_dim, deploy=deploy)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = Conv2dBN(hidden_dim, hidden_dim, 3, 2, 1, groups=hidden_dim, deploy=deploy)
        self.se = SqueezeExcite(hidden_dim, .25)
        self.conv3 = Conv2dBN(hidden_dim, out_dim, deploy=deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


def relative_bias_index(height: int, width: int, table_size: int,
                        device: torch.device) -> torch.Tensor:
    """Index into a ``table_size``² bias table for every token pair of a ``height``×``width`` map.

    The official enumeration gives offset ``(|dy|, |dx|)`` the index ``|dy| * R + |dx|``, so maps
    smaller than the window simply use the entries of their real offsets.
    """
    ys = torch.arange(height, device=device).repeat_interleave(width)
    xs = torch.arange(width, device=device).repeat(height)
    dy = (ys[:, None] - ys[None, :]).abs()
    dx = (xs[:, None] - xs[None, :]).abs()
    return dy * table_size + dx


class CascadedGroupAttention(nn.Module):
    """Cascaded group attention over whole maps (one window each).

    Head ``i`` sees channel chunk ``i`` plus the output of head ``i-1``; its query goes through a
    depthwise Conv+BN with kernel ``kernels[i]``. Each head has one learnable bias per relative
    offset ``(|dy|, |dx|)`` of a ``window_size``² window (``attention_biases``).
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int], deploy: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.val_dim = dim // num_heads
        self.scale = key_dim ** -0.5
        self.window_size = window_size
        self.qkvs = nn.ModuleList(
            Conv2dBN(dim // num_heads, 2 * key_dim + self.val_dim, deploy=deploy)
            for _ in range(num_heads))
        self.dws = nn.ModuleList(
            Conv2dBN(key_dim, key_dim, kernels[i], 1, kernels[i] // 2, groups=key_dim, deploy=deploy)
            for i in range(num_heads))
        self.proj = nn.Sequential(
            nn.ReLU(inplace=True),
            Conv2dBN(self.val_dim * num_heads, dim, bn_weight_init=0., deploy=deploy))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # Official checkpoints (the COCO releases too) store the bias index as a buffer; we compute
        # it. Accept the buffer, so those files load strictly, if it is the official enumeration.
        idxs = state_dict.pop(prefix + 'attention_bias_idxs', None)
        if idxs is not None:
            side = round(idxs.shape[-1] ** 0.5)
            expected = relative_bias_index(side, side, side, idxs.device)
            if idxs.shape != expected.shape or not torch.equal(idxs.long(), expected):
                error_msgs.append(f'{prefix}attention_bias_idxs of shape {tuple(idxs.shape)} is '
                                  'not the official |dy|*R+|dx| enumeration of a window')
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def attention_bias(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """(heads, N, N) bias for a ``height``×``width`` map, gathered from the table on every call.

        No cache: deployed ``predict`` is as fast without one (docs/backbone.md, "Unfused inference").
        """
        return self.attention_biases[:, relative_bias_index(height, width, self.window_size, device)]

    def forward(self, x: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend over each map of ``x`` (B, C, H, W) as one window.

        ``valid`` (window_size × window_size bool, only for window-sized ``x``) marks the tokens
        that exist; the others are padding that must not count: their keys get no weight and
        their queries enter the depthwise conv as zeros, so the valid outputs equal attention
        over the valid region alone (see :meth:`LocalWindowAttention.forward`).
        """
        B, _, H, W = x.shape
        if valid is None:
            bias, query_mask = self.attention_bias(H, W, x.device), None
        else:
            ws = self.window_size  # window-sized maps: a constant index, not one per traced size
            bias = self.attention_bias(ws, ws, x.device).masked_fill(
                ~valid.reshape(1, 1, ws * ws), float('-inf'))
            query_mask = valid.to(x.dtype)
        feats_in = x.chunk(self.num_heads, dim=1)
        feats_out = []
        feat = feats_in[0]
        for i in range(self.num_heads):
            if i > 0:
                feat = feat + feats_in[i]
            q, k, v = self.qkvs[i](feat).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            if query_mask is not None:
                q = q * query_mask
            q = self.dws[i](q).flatten(2)
            # scale·qᵀk + bias in one GEMM, as softmax((qᵀk)·scale + bias) of the official code
            attn = torch.baddbmm(bias[i], q.transpose(1, 2), k.flatten(2), alpha=self.scale)
            attn = attn.softmax(dim=-1)
            # tokens × channels out, viewed as a channels-last map (no copy)
            feat = torch.bmm(attn, v.flatten(2).transpose(1, 2))
            feat = feat.view(B, H, W, self.val_dim).permute(0, 3, 1, 2)
            feats_out.append(feat)
        return self.proj(torch.cat(feats_out, dim=1))


class LocalWindowAttention(nn.Module):
    """Window attention for any map size, windowing exactly as the official detection code.

    A map larger than the window in either direction is zero-padded (bottom/right) to a multiple
    of the window, split into windows that go into the batch dimension, attended and cropped.
    A map that fits in one window attends over itself (the official code only allows exactly
    window-sized maps here; smaller ones use the bias entries of their real offsets).

    While tracing (ONNX export) the choice between the two cannot be a Python branch, or the
    graph would keep the one taken at export time. The traced graph always pads and splits; for a
    map that fits in one window (a condition computed in the graph) it pads to exactly one window
    and masks the padding out of the attention (``valid``), which gives the unpadded result.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int], deploy: bool = False):
        super().__init__()
        self.window_size = window_size
        self.attn = CascadedGroupAttention(dim, key_dim, num_heads, window_size, kernels, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        ws = self.window_size
        tracing = torch.jit.is_tracing()
        if not tracing and H <= ws and W <= ws:
            return self.attn(x)
        valid = None
        if tracing:  # sizes are graph values here: choose the regime in the graph
            fits = (H <= ws) & (W <= ws)
            coords = torch.arange(ws, device=x.device)
            valid = ((coords[:, None] < H) & (coords[None, :] < W)) | ~fits
        pad_b, pad_r = (-H) % ws, (-W) % ws
        x = x.permute(0, 2, 3, 1)  # B, H, W, C: free for the channels-last maps of the backbone
        if pad_b or pad_r or tracing:  # traced: keep the pad op for any size
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
        x = x.reshape(B, nh, ws, nw, ws, C).transpose(2, 3).reshape(B * nh * nw, ws, ws, C)
        x = self.attn(x.permute(0, 3, 1, 2), valid).permute(0, 2, 3, 1)
        x = x.reshape(B, nh, nw, ws, ws, C).transpose(2, 3).reshape(B, nh * ws, nw * ws, C)
        return x[:, :H, :W].permute(0, 3, 1, 2)


class EfficientViTBlock(nn.Module):
    """Sandwich block: dw → FFN → window attention → dw → FFN, each residual."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int], drop_path: float = 0., deploy: bool = False):
        super().__init__()

        def dw() -> Residual:
            return Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0., deploy=deploy),
                            drop_path, deploy)

        self.dw0 = dw()
        self.ffn0 = Residual(FFN(dim, dim * 2, deploy), drop_path, deploy)
        self.mixer = Residual(
            LocalWindowAttention(dim, key_dim, num_heads, window_size, kernels, deploy), drop_path,
            deploy)
        self.dw1 = dw()
        self.ffn1 = Residual(FFN(dim, dim * 2, deploy), drop_path, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


def _local_block(dim: int, drop_path: float, deploy: bool) -> nn.Sequential:
    """Residual depthwise conv + residual FFN, used before and after each PatchMerging."""
    return nn.Sequential(
        Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim, deploy=deploy), drop_path, deploy),
        Residual(FFN(dim, dim * 2, deploy), drop_path, deploy))


@MODELS.register_module()
class EfficientViT(BaseModule):
    """Microsoft's EfficientViT (CVPR 2023) as a detection backbone.

    Args:
        arch: ``'m0'`` … ``'m5'`` (any case) or a dict with ``embed_dims``, ``depths``,
            ``num_heads``, ``kernels`` (one per head) and ``key_dims``.
        window_size: attention window per stage (int or 3 ints); 7 as the official detection code.
        out_indices: stages to return (0, 1, 2 → strides 16, 32, 64).
        out_stride8: also return, first, the patch embed's stride-8 map (after its third conv and
            ReLU, ``embed_dims[0] // 2`` channels), for necks that want a stride-8 input at no
            extra cost (on DemoShapes, RTMDet did better upsampling the stride-16 map:
            docs/realtime.md).
        frozen_stages: -1 none; 0 the patch embed; k the patch embed and stages 1..k.
        norm_eval: keep every BatchNorm in eval mode while training.
        with_cp: activation checkpointing per block (saves memory, costs a recompute).
        drop_path_rate: stochastic depth, linearly increasing over the blocks.
        deploy: build the BN-folded inference structure (see :meth:`switch_to_deploy`).
        init_cfg: ``dict(type='Pretrained', checkpoint=path | URL | 'efficientvit://...' | 'hf-hub:...')``
            converts any released layout, and raises if any backbone weight would stay random.
    """
    arch_zoo = {
        'm0': dict(embed_dims=[64, 128, 192], depths=[1, 2, 3], num_heads=[4, 4, 4],
                   kernels=[5, 5, 5, 5], key_dims=[16, 16, 16]),
        'm1': dict(embed_dims=[128, 144, 192], depths=[1, 2, 3], num_heads=[2, 3, 3],
                   kernels=[7, 5, 3, 3], key_dims=[16, 16, 16]),
        'm2': dict(embed_dims=[128, 192, 224], depths=[1, 2, 3], num_heads=[4, 3, 2],
                   kernels=[7, 5, 3, 3], key_dims=[16, 16, 16]),
        'm3': dict(embed_dims=[128, 240, 320], depths=[1, 2, 3], num_heads=[4, 3, 4],
                   kernels=[5, 5, 5, 5], key_dims=[16, 16, 16]),
        'm4': dict(embed_dims=[128, 256, 384], depths=[1, 2, 3], num_heads=[4, 4, 4],
                   kernels=[7, 5, 3, 3], key_dims=[16, 16, 16]),
        'm5': dict(embed_dims=[192, 288, 384], depths=[1, 3, 4], num_heads=[3, 3, 4],
                   kernels=[7, 5, 3, 3], key_dims=[16, 16, 16]),
    }
    num_stages = 3

    def __init__(self,
                 arch: Union[str, dict] = 'm4',
                 window_size: Union[int, Sequence[int]] = (7, 7, 7),
                 out_indices: Sequence[int] = (0, 1, 2),
                 out_stride8: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        self.arch_name, self.arch_settings = self._parse_arch(arch)
        settings = self.arch_settings
        self.embed_dims: List[int] = list(settings['embed_dims'])
        if isinstance(window_size, int):
            window_size = (window_size, ) * self.num_stages
        self.window_size = tuple(int(w) for w in window_size)
        if len(self.window_size) != self.num_stages or min(self.window_size) < 1:
            raise ConfigError(f'window_size must be a positive int or {self.num_stages} positive '
                             f'ints, got {window_size!r}')
        self.out_indices = tuple(out_indices)
        if not self.out_indices or any(i not in range(self.num_stages) for i in self.out_indices):
            raise ConfigError(f'out_indices must be a non-empty subset of (0, 1, 2), got {out_indices!r}')
        self.out_stride8 = bool(out_stride8)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ConfigError(f'frozen_stages must be in [-1, {self.num_stages}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.drop_path_rate = drop_path_rate
        self.deploy = deploy

        dims, depths = self.embed_dims, settings['depths']
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        c = dims[0]  # four 3×3 stride-2 Conv+BN, ReLU between: patch_embed.{0,2,4,6} as released
        self.patch_embed = nn.Sequential(
            Conv2dBN(3, c // 8, 3, 2, 1, deploy=deploy), nn.ReLU(inplace=True),
            Conv2dBN(c // 8, c // 4, 3, 2, 1, deploy=deploy), nn.ReLU(inplace=True),
            Conv2dBN(c // 4, c // 2, 3, 2, 1, deploy=deploy), nn.ReLU(inplace=True),
            Conv2dBN(c // 2, c, 3, 2, 1, deploy=deploy))
        for i in range(self.num_stages):
            layers: List[nn.Module] = []
            rates = dpr[sum(depths[:i]):sum(depths[:i + 1])]
            if i > 0:
                layers += [_local_block(dims[i - 1], rates[0], deploy),
                           PatchMerging(dims[i - 1], dims[i], deploy),
                           _local_block(dims[i], rates[0], deploy)]
            layers += [
                EfficientViTBlock(dims[i], settings['key_dims'][i], settings['num_heads'][i],
                                  self.window_size[i], settings['kernels'], rates[j], deploy)
                for j in range(depths[i])
            ]
            self.add_module(f'blocks{i + 1}', nn.Sequential(*layers))
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> Tuple[str, dict]:
        """Validate ``arch`` and return (display name, settings)."""
        if isinstance(arch, str):
            key = arch.lower()
            if key not in cls.arch_zoo:
                raise ConfigError(f'Unknown EfficientViT arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_zoo)} or pass a dict with keys {ARCH_KEYS}')
            return key.upper(), copy.deepcopy(cls.arch_zoo[key])
        if not isinstance(arch, dict) or set(arch) != set(ARCH_KEYS):
            raise ConfigError(f'A custom EfficientViT arch must be a dict with exactly the keys '
                             f'{ARCH_KEYS}, got {arch!r}')
        settings = {k: list(arch[k]) for k in ARCH_KEYS}
        for k in ('embed_dims', 'depths', 'num_heads', 'key_dims'):
            if len(settings[k]) != cls.num_stages:
                raise ConfigError(f'arch[{k!r}] needs {cls.num_stages} values, got {settings[k]}')
        for dim, heads in zip(settings['embed_dims'], settings['num_heads']):
            if dim % heads or dim % 8:
                raise ConfigError(f'embed dim {dim} must be divisible by 8 and by its '
                                 f'{heads} heads')
        if len(settings['kernels']) < max(settings['num_heads']):
            raise ConfigError('arch["kernels"] needs one kernel size per head')
        for name, zoo_settings in cls.arch_zoo.items():
            if zoo_settings == settings:
                return name.upper(), settings
        return 'custom', settings

    def _stage_modules(self, index: int) -> nn.Module:
        """Module of stage ``index`` for freezing: 0 the patch embed, k the k-th ``blocks``."""
        return self.patch_embed if index == 0 else getattr(self, f'blocks{index}')

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            module = self._stage_modules(i)
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'EfficientViT':
        """Switch mode, keeping frozen stages (and with ``norm_eval`` every BN) in eval."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        # Channels-last maps inside: oneDNN convs skip their layout reorders and the window
        # partition becomes plain reshapes. Outputs are contiguous NCHW: mmcv's RoIAlign (CPU and
        # CUDA) reads its input as contiguous and pools garbage from channels-last strides.
        x = x.contiguous(memory_format=torch.channels_last)
        outs = []
        if self.out_stride8:  # patch_embed[:6] ends at stride 8 (three stride-2 convs, ReLU)
            x = self.patch_embed[:6](x)
            outs.append(x.contiguous())
            x = self.patch_embed[6:](x)
        else:
            x = self.patch_embed(x)
        checkpointing = self.with_cp and self.training and torch.is_grad_enabled()
        for i in range(self.num_stages):
            for layer in getattr(self, f'blocks{i + 1}'):
                if checkpointing:
                    x = cp.checkpoint(layer, x, use_reentrant=False)
                else:
                    x = layer(x)
            if i in self.out_indices:
                outs.append(x.contiguous())
        return tuple(outs)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm into its conv (and skip connections into depthwise convs).

        Outputs in eval mode stay equal to the unfused model's; idempotent.
        """
        for m in self.modules():
            if isinstance(m, Conv2dBN):
                m.fuse()
        for m in self.modules():
            if isinstance(m, Residual):
                m.fold_identity()
        self.deploy = True

    def init_weights(self) -> None:
        """Run mmengine's initialisers, but load ``Pretrained`` checkpoints through our checker.

        mmengine's PretrainedInit loads with ``strict=False`` and only logs mismatches; here any
        backbone weight that would stay random raises instead.
        """
        cfgs = self.init_cfg if isinstance(self.init_cfg, list) else [self.init_cfg]
        pretrained = [c for c in cfgs if isinstance(c, dict) and c.get('type') in PRETRAINED_TYPES]
        if not pretrained or self._is_init:
            super().init_weights()
            return
        others = [c for c in cfgs if c is not None and c not in pretrained]
        if others:  # e.g. Kaiming for some layers: mmengine runs them before the checkpoint
            original, self.init_cfg = self.init_cfg, others
            try:
                super().init_weights()
            finally:
                self.init_cfg = original
        cfg = pretrained[-1]
        self.load_pretrained(cfg['checkpoint'], prefix=cfg.get('prefix'))
        self._is_init = True

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None) -> None:
        """Load a checkpoint of any supported layout (see ``models/utils/checkpoint.py``)."""
        state_dict = load_backbone_state_dict(checkpoint, prefix=prefix)
        if self.deploy and not is_deployed_state_dict(state_dict):
            # An unfused checkpoint for a deployed model: load into an unfused twin and fold it.
            twin = EfficientViT(self.arch_settings, window_size=self.window_size)
            load_state_dict_checked(twin, state_dict, checkpoint, self.arch_zoo, twin.arch_name)
            twin.switch_to_deploy()
            state_dict = twin.state_dict()
            print_log(f'EfficientViT: folded the BatchNorms of {checkpoint} for deploy=True',
                      logger='current')
        load_state_dict_checked(self, state_dict, checkpoint, self.arch_zoo, self.arch_name)
