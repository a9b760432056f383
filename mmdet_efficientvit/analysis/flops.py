"""Params and FLOPs with mmengine's ``FlopAnalyzer``, and the paper's classifier comparison.

FLOPs follow the fvcore / mmengine convention of the paper: one multiply-add counts as one FLOP,
convolutions, linears and the attention matmuls (``q^T k`` and ``v attn^T``) are counted, softmax and
element-wise additions are not.
"""
import math
from typing import Dict, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.complexity_analysis import bmm_flop_jit
from mmengine.config import Config

from ..deployment.traceable import TensorModeDetector
from ..model_zoo import CLS_WINDOW_SIZE, PAPER_MFLOPS
from ..models.builders import build_backbone, build_detector
from ..models.utils.deploy import deploy_model


def build_classifier_head(in_channels: int, num_classes: int = 1000) -> nn.Module:
    """The paper's classification head (global average pool, BN, Linear), for FLOP comparisons."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.BatchNorm1d(in_channels),
        nn.Linear(in_channels, num_classes)).eval()


def baddbmm_flop_jit(inputs, outputs) -> int:
    """``baddbmm(bias, a, b)``: the multiply-adds of ``a @ b`` (the added bias is not counted, as
    fvcore/mmengine count ``addmm``). Our attention computes ``scale * q^T k + bias`` this way."""
    return bmm_flop_jit(inputs[1:3], outputs)


def complexity(model: nn.Module, inputs: Union[torch.Tensor, Tuple[torch.Tensor, ...]]) -> Dict:
    """Params and FLOPs (multiply-adds) of ``model(inputs)`` with mmengine's ``FlopAnalyzer``.

    Returns ``dict(flops=int, params=int, matmul_flops=int, by_operator={op: flops},
    analyzer=FlopAnalyzer)``; ``matmul_flops`` sums the matrix products (the attention).
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs, )
    analyzer = FlopAnalyzer(model, inputs).set_op_handle(**{'aten::baddbmm': baddbmm_flop_jit})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        flops = analyzer.total()
    by_operator = dict(analyzer.by_operator())
    matmul = sum(by_operator.get(op, 0) for op in ('matmul', 'bmm', 'baddbmm', 'einsum'))
    return dict(flops=flops, params=parameter_count(model)[''], matmul_flops=matmul,
                by_operator=by_operator, analyzer=analyzer)


def classifier_complexity(arch: str, deploy: bool = True) -> Dict:
    """FLOPs of the paper's classifier at 224: our backbone with classification windows plus the head.

    The head (pool + BN + Linear to 1000 classes) is counted on the backbone's last map with the same
    analyzer; with ``deploy`` its BN is folded into the Linear like the backbone's BNs are, which is how
    the paper's numbers (79 ... 522 MFLOPs) come out.
    """
    backbone = build_backbone(arch, window_size=CLS_WINDOW_SIZE)
    img = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        last = backbone(img)[-1]
    head = build_classifier_head(last.shape[1])
    # Parameters as released (BN included), whatever ``deploy`` says.
    params = parameter_count(backbone)[''] + parameter_count(head)['']
    if deploy:
        deploy_model(backbone)
        head = nn.Sequential(*head[:2], head[3])  # BN folded into the Linear: no BN FLOPs left
    body_flops = complexity(backbone, img)['flops']
    head_flops = complexity(head, last)['flops']
    return dict(flops=body_flops + head_flops, backbone_flops=body_flops, head_flops=head_flops,
                params=params, paper_flops=PAPER_MFLOPS[arch] * 1e6)


def detector_complexity(cfg: Config, size: Tuple[int, int] = (800, 1333),
                        deploy: bool = False) -> Dict:
    """Params and FLOPs of a detector config at ``size``, padded as its data preprocessor pads.

    mmdet's tensor mode: single-stage detectors are backbone + neck + head without NMS, two-stage
    ones include the RPN proposals and the RoI heads. Returns ``complexity``'s dict plus ``size``
    (the padded input), ``pad_size_divisor``, ``backbone_params`` and ``backbone_flops``.
    """
    divisor = cfg.model.get('data_preprocessor', {}).get('pad_size_divisor', 1)
    input_size = tuple(int(math.ceil(s / divisor) * divisor) for s in size)
    model = build_detector(cfg)
    if deploy:
        deploy_model(model)
    img = torch.zeros(1, 3, *input_size)
    stats = complexity(TensorModeDetector(model), img)
    backbone = complexity(model.backbone, img)
    return dict(stats, size=input_size, pad_size_divisor=divisor, backbone_params=backbone['params'],
                backbone_flops=backbone['flops'])
