"""Export the EfficientViT backbone or a detector (without NMS) to ONNX and check it.

The graph has dynamic batch, height and width and is BN-folded (``switch_to_deploy``) unless
``--no-deploy``. After export, onnxruntime is compared with PyTorch at every ``--check-sizes`` entry
(by default two sizes whose attention windows need different padding) and the tool exits non-zero
when any output differs by more than ``--atol`` (1e-4).

A detector is exported as backbone + neck + head, returning the raw maps: ``cls_score_{level}`` for
every level, then ``bbox_pred_{level}``; decoding and NMS stay outside the graph.

Examples::

    python tools/deployment/export_onnx.py m4 --out work_dirs/onnx/evit_m4.onnx
    python tools/deployment/export_onnx.py configs/retinanet_evit_m4_fpn_1x_coco.py \\
        --checkpoint work_dirs/retinanet_m4/epoch_12.pth --out work_dirs/onnx/retinanet_evit_m4.onnx

Without ``--checkpoint`` the weights are random, with randomised BatchNorm statistics so that the
check exercises every branch (fresh EfficientViT zero-initialises several BN weights).
"""
import argparse
import os
import sys
import time
from typing import List, Optional

import torch

from mmdet_efficientvit.analysis.builders import (Backbone, RawDetector, build_backbone,
                                                  build_detector, parse_size, randomize_batchnorm)
from mmdet_efficientvit.deployment.onnx_export import DEFAULT_OPSET, check_onnx, export_onnx
from mmdet_efficientvit.model_zoo import ARCHS
from mmdet_efficientvit.models.utils import deploy_model


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export EfficientViT / a detector to ONNX')
    parser.add_argument('target', help='backbone arch (m0..m5) or a detector config file')
    parser.add_argument('--checkpoint', help='weights: an EfficientViT checkpoint for a backbone '
                        '(official, timm or ours), a detector checkpoint for a config')
    parser.add_argument('--out', help='output .onnx (default work_dirs/onnx/<target>.onnx)')
    parser.add_argument('--shape', default='800x1216', help='export input HxW')
    parser.add_argument('--check-sizes', nargs='+', default=['800x1216', '736x1088'],
                        help='HxW sizes at which onnxruntime must match PyTorch')
    parser.add_argument('--atol', type=float, default=1e-4)
    parser.add_argument('--no-deploy', action='store_true', help='keep BatchNorm unfolded')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def build(args: argparse.Namespace):
    """The model to export and its output names."""
    torch.manual_seed(args.seed)
    if args.target.lower() in ARCHS:
        arch = args.target.lower()
        model = Backbone(build_backbone(arch, checkpoint=args.checkpoint))
        names = [f'stage{i}' for i in range(len(model.model.embed_dims))]
    elif os.path.isfile(args.target) or '::' in args.target:
        detector = build_detector(args.target, checkpoint=args.checkpoint)
        model = RawDetector(detector)
        levels = len(detector.bbox_head.prior_generator.strides)
        names = [f'cls_score_{i}' for i in range(levels)] + [f'bbox_pred_{i}' for i in range(levels)]
    else:
        sys.exit(f"export_onnx.py: {args.target!r} is neither a backbone arch ({', '.join(ARCHS)}) "
                 'nor an existing config file')
    if args.checkpoint is None:
        randomize_batchnorm(model, args.seed)
    return model.eval(), names


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    model, names = build(args)
    name = os.path.splitext(os.path.basename(args.target))[0]
    out = args.out or os.path.join('work_dirs', 'onnx', f'{name}.onnx')
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    checks = [torch.randn(1, 3, *parse_size(s)) for s in args.check_sizes]
    if not args.no_deploy:
        with torch.no_grad():
            before = [model(x) for x in checks]
        deploy_model(model)
        with torch.no_grad():
            diff = max(float((a - b).abs().max()) for x, ref in zip(checks, before)
                       for a, b in zip(model(x), ref))
        print(f'deployed (BN folded); max |deployed - unfused| in PyTorch: {diff:.2e}')
    start = time.time()
    export_onnx(model, out, torch.randn(1, 3, *parse_size(args.shape)), names, opset=args.opset)
    print(f'exported {out} in {time.time() - start:.1f}s (dynamic batch, height, width; opset {args.opset})')
    try:
        records = check_onnx(out, model, checks, atol=args.atol)
    except RuntimeError as err:
        sys.exit(f'ONNX check FAILED: {err}')
    for r in records:
        print(f"onnxruntime vs PyTorch at {r['shape'][2]}×{r['shape'][3]}: max |diff| "
              f"{r['max_abs_diff']:.2e} (largest output {r['max_abs_ref']:.2f}) <= {args.atol:g}: OK")
    return out


if __name__ == '__main__':
    main()
