"""EfficientViTFPN: mmdet's FPN plus transposed-conv levels finer than the backbone's.

EfficientViT's feature maps sit at strides 16/32/64, while RetinaNet and Mask R-CNN want levels from
stride 8 (or 4). The official downstream neck (microsoft/Cream, EfficientViT/downstream) keeps mmdet's
FPN and adds ``num_extra_trans_convs`` 2x2 stride-2 transposed convs on the finest lateral, each followed
by a 3x3 output conv. This module reproduces that neck with the same parameter names
(``lateral_convs``, ``fpn_convs``, ``extra_trans_convs``, ``extra_fpn_convs``) and the same arithmetic,
so the released detection checkpoints load without renaming.
"""
from typing import List, Tuple, Union

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, MultiConfig, OptConfigType
from torch import Tensor

from ...errors import ConfigError


@MODELS.register_module()
class EfficientViTFPN(FPN):
    """FPN whose outputs start ``num_extra_trans_convs`` octaves below the finest input.

    Arguments are mmdet's :class:`~mmdet.models.necks.FPN` arguments (``end_level`` is inclusive, as in
    mmdet 3.x) plus:

    Args:
        num_extra_trans_convs (int): number of extra finer levels. Level ``i`` is made by a 2x2 stride-2
            ``ConvTranspose2d`` (with bias, no norm unless ``norm_cfg`` is set and
            ``no_norm_on_lateral`` is False) from the previous one, starting at the finest lateral after
            the top-down pass; each is then smoothed by a 3x3 conv. They count towards ``num_outs``,
            so ``num_outs - num_extra_trans_convs`` levels come from the ordinary FPN (its inputs plus
            extra stride-2 convs or max-pool levels). When that is fewer than the used inputs, the
            coarsest inputs only feed the top-down pathway and get no output (nor output conv):
            this is how RTMDet's strides 8/16/32 are made from the backbone's 16/32/64.

    Example (RetinaNet on EfficientViT-M4, inputs at strides 16/32/64):
        ``EfficientViTFPN([128, 256, 384], 256, num_outs=5, add_extra_convs='on_input',
        num_extra_trans_convs=1)`` returns five maps at strides 8, 16, 32, 64, 128;
        ``EfficientViTFPN([64, 128, 192], 96, num_outs=3, num_extra_trans_convs=1)`` three maps at
        strides 8, 16, 32 (the stride-64 map enters only the top-down sum).
    """

    def __init__(
        self,
        in_channels: List[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: Union[bool, str] = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        num_extra_trans_convs: int = 0,
        conv_cfg: OptConfigType = None,
        norm_cfg: OptConfigType = None,
        act_cfg: OptConfigType = None,
        upsample_cfg: ConfigType = dict(mode='nearest'),
        init_cfg: MultiConfig = dict(type='Xavier', layer='Conv2d', distribution='uniform'),
    ) -> None:
        num_fpn_outs = num_outs - num_extra_trans_convs
        num_used_ins = (len(in_channels) if end_level == -1 else end_level + 1) - start_level
        if num_extra_trans_convs < 0 or num_fpn_outs < 1:
            raise ConfigError(
                f'EfficientViTFPN: num_outs={num_outs} must exceed num_extra_trans_convs='
                f'{num_extra_trans_convs} (>= 0): at least one output must come from the FPN levels; '
                'raise num_outs or lower num_extra_trans_convs.')
        if num_fpn_outs < num_used_ins and add_extra_convs:
            raise ConfigError(
                f'EfficientViTFPN: add_extra_convs={add_extra_convs!r} adds levels above the '
                f'coarsest input, but num_outs={num_outs} drops outputs of the {num_used_ins} used '
                'inputs; set add_extra_convs=False or raise num_outs.')
        super().__init__(
            in_channels, out_channels, max(num_fpn_outs, num_used_ins), start_level=start_level,
            end_level=end_level,
            add_extra_convs=add_extra_convs, relu_before_extra_convs=relu_before_extra_convs,
            no_norm_on_lateral=no_norm_on_lateral, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
            act_cfg=act_cfg, upsample_cfg=upsample_cfg, init_cfg=init_cfg)
        self.num_extra_trans_convs = num_extra_trans_convs
        self.num_outs = num_outs
        # inputs with an output of their own (the coarsest ones may only feed the top-down sum)
        self.num_fpn_levels = min(num_used_ins, num_fpn_outs)
        del self.fpn_convs[self.num_fpn_levels:num_used_ins]

        self.extra_trans_convs = nn.ModuleList()
        self.extra_fpn_convs = nn.ModuleList()
        for _ in range(num_extra_trans_convs):
            self.extra_trans_convs.append(
                ConvModule(
                    out_channels, out_channels, 2, stride=2, padding=0,
                    conv_cfg=dict(type='deconv'),
                    norm_cfg=None if no_norm_on_lateral else norm_cfg,
                    act_cfg=act_cfg, inplace=False))
            self.extra_fpn_convs.append(
                ConvModule(
                    out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg,
                    norm_cfg=norm_cfg, act_cfg=act_cfg, inplace=False))

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """Return ``num_outs`` maps, finest first (the transposed-conv levels, then FPN's levels)."""
        if len(inputs) != len(self.in_channels):
            raise ConfigError(f'EfficientViTFPN expects {len(self.in_channels)} feature maps '
                             f'(in_channels={self.in_channels}), got {len(inputs)}.')

        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):  # top-down pathway, as mmdet's FPN
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up

        # Finer levels: trans conv k upsamples the result of trans conv k-1 (the first one the finest
        # lateral). As in the official neck, the list is then ordered finest first and extra_fpn_convs[k]
        # smooths the k-th finest map (so with two levels, extra_fpn_convs[0] pairs with
        # extra_trans_convs[1]); the released checkpoints were trained with this pairing.
        finer = []
        prev = laterals[0]
        for trans_conv in self.extra_trans_convs:
            prev = trans_conv(prev)
            finer.insert(0, prev)
        outs = [conv(x) for conv, x in zip(self.extra_fpn_convs, finer)]

        outs += [self.fpn_convs[i](laterals[i]) for i in range(self.num_fpn_levels)]
        num_fpn_extra = self.num_outs - len(outs)
        if num_fpn_extra > 0 and not self.add_extra_convs:
            for _ in range(num_fpn_extra):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif num_fpn_extra > 0:
            source = {
                'on_input': inputs[self.backbone_end_level - 1],
                'on_lateral': laterals[-1],
                'on_output': outs[-1],
            }[self.add_extra_convs]
            for conv in self.fpn_convs[self.num_fpn_levels:]:
                outs.append(conv(source))
                source = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
        return tuple(outs)
