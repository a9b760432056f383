"""EfficientViTPAFPN: RTMDet's CSPNeXtPAFPN over EfficientViT's maps and a stride-8 map.

RTMDet predicts at strides 8/16/32; EfficientViT's maps sit at 16/32/64. This neck takes the stride-8
map from the backbone's patch embed (``EfficientViT(out_stride8=True)``, four input maps) or makes it
the way the official EfficientViT detection neck makes its finer levels (a 2x2 stride-2 transposed
conv from the stride-16 backbone map, three input maps), runs CSPNeXtPAFPN's top-down pathway over
all four maps (so the stride-64 stage still informs every level) and its bottom-up pathway and output
convs over the finest ``num_outs`` only. ``docs/realtime.md`` compares the stride bridges: these two,
:class:`~mmdet_efficientvit.models.necks.EfficientViTFPN` with ``num_outs=3``, and cheaper heads.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.necks import CSPNeXtPAFPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType
from torch import Tensor

from ...errors import ConfigError


@MODELS.register_module()
class EfficientViTPAFPN(CSPNeXtPAFPN):
    """CSPNeXtPAFPN on ``(x8, x16, x32, x64)`` returning the finest ``num_outs`` levels.

    Args:
        in_channels: channels of the backbone maps at strides 16, 32, 64 (``x8 = deconv(x16)``), or
            at 8, 16, 32, 64 (``x8`` from the backbone).
        out_channels: channels of every output.
        num_outs: outputs, finest first (3: strides 8, 16, 32).
        stride8_channels: channels of the transposed-conv stride-8 map (default ``in_channels[0] // 2``,
            halving per octave as CSPNeXt's stages do); only with three input maps.
        **kwargs: the other :class:`~mmdet.models.necks.CSPNeXtPAFPN` arguments; ``norm_cfg`` and
            ``act_cfg`` also apply to the transposed conv.

    Unlike CSPNeXtPAFPN, maps are upsampled to the size of the finer map rather than by exactly 2x,
    so inputs that are not a multiple of 64 pixels work (ONNX export checks odd sizes).
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: int,
                 num_outs: int = 3,
                 stride8_channels: Optional[int] = None,
                 norm_cfg: ConfigType = dict(type='BN', momentum=0.03, eps=0.001),
                 act_cfg: ConfigType = dict(type='Swish'),
                 **kwargs) -> None:
        if len(in_channels) not in (3, 4) or not 1 <= num_outs <= 4 or (
                len(in_channels) == 4 and stride8_channels is not None):
            raise ConfigError(f'EfficientViTPAFPN takes the backbone maps at strides 16, 32, 64 (3, '
                              f'optional stride8_channels) or 8, 16, 32, 64 (4) and returns 1-4 '
                              f'levels from stride 8; got in_channels={in_channels}, '
                              f'stride8_channels={stride8_channels}, num_outs={num_outs}')
        levels = list(in_channels)
        if len(in_channels) == 3:
            levels.insert(0, stride8_channels or in_channels[0] // 2)
        super().__init__(levels, out_channels, norm_cfg=norm_cfg, act_cfg=act_cfg, **kwargs)
        self.backbone_channels = list(in_channels)
        self.num_outs = num_outs
        self.stride8 = None if len(in_channels) == 4 else ConvModule(
            in_channels[0], levels[0], 2, stride=2, padding=0, conv_cfg=dict(type='deconv'),
            norm_cfg=norm_cfg, act_cfg=act_cfg)
        # the bottom-up pathway stops at the coarsest output
        del self.downsamples[num_outs - 1:]
        del self.bottom_up_blocks[num_outs - 1:]
        del self.out_convs[num_outs:]

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """Return ``num_outs`` maps, finest (stride 8) first."""
        if len(inputs) != len(self.backbone_channels):
            raise ConfigError(f'EfficientViTPAFPN expects {len(self.backbone_channels)} feature maps '
                              f'(in_channels={self.backbone_channels}), got {len(inputs)}.')
        feats = list(inputs) if self.stride8 is None else [self.stride8(inputs[0]), *inputs]
        inner_outs = [feats[-1]]  # top-down, as CSPNeXtPAFPN, over all four maps
        for i, idx in enumerate(range(len(feats) - 1, 0, -1)):
            high = self.reduce_layers[i](inner_outs[0])
            inner_outs[0] = high
            up = F.interpolate(high, size=feats[idx - 1].shape[2:], mode='nearest')
            inner_outs.insert(0, self.top_down_blocks[i](torch.cat([up, feats[idx - 1]], 1)))
        outs = [inner_outs[0]]  # bottom-up over the output levels
        for idx in range(self.num_outs - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner_outs[idx + 1]], 1)))
        return tuple(conv(x) for conv, x in zip(self.out_convs, outs))
