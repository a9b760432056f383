"""Params and FLOPs of the EfficientViT backbone or of any detector config, with mmengine's analyzer.

FLOPs are multiply-adds (fvcore / mmengine convention, as in the paper); the attention matmuls are
counted (listed as ``matmul`` in the per-operator breakdown).

Examples::

    # backbones M0-M5 at 224, plus the paper's classifier comparison (79 ... 522 MFLOPs)
    python tools/analysis_tools/get_flops.py all
    # one backbone at a detection size, BN folded
    python tools/analysis_tools/get_flops.py m4 --size 800x1216 --deploy
    # a detector at 1333x800 (mmdet's tensor mode: single-stage without NMS; two-stage with the
    # RPN proposals and the RoI heads)
    python tools/analysis_tools/get_flops.py configs/retinanet_evit_m4_fpn_1x_coco.py --size 800x1333

The paper's numbers are for the full classifier (backbone + pool/BN/Linear head, 1000 classes) at
224 with classification windows (min(7, stage resolution) = 7, 7, 4) and BatchNorm folded, which is
what the ``classifier`` columns of the backbone table reproduce.
"""
import argparse
import os
import sys
from typing import List, Optional

import torch
from mmengine.analysis.print_helper import complexity_stats_table

from mmdet_efficientvit.analysis.flops import (classifier_complexity, complexity,
                                               detector_complexity)
from mmdet_efficientvit.deployment.traceable import BackboneFeatureMaps
from mmdet_efficientvit.model_zoo import ARCHS, CLS_WINDOW_SIZE, PAPER_MFLOPS
from mmdet_efficientvit.models.builders import build_backbone
from mmdet_efficientvit.models.utils import deploy_model
from mmdet_efficientvit.resources import load_config
from mmdet_efficientvit.tools_support import parse_size


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Params and FLOPs (multiply-adds) with mmengine')
    parser.add_argument('target', help="backbone arch (m0..m5), 'all', or a detector config file "
                        "(also mmdet::retinanet/retinanet_r50_fpn_1x_coco.py)")
    parser.add_argument('--size', default=None,
                        help='input H or HxW (default: 224 for backbones, 800x1333 for configs)')
    parser.add_argument('--window-size', type=int, nargs=3, default=None,
                        help='backbone windows (default 7 7 7; 7 7 4 at 224 as in classification)')
    parser.add_argument('--deploy', action='store_true', help='fold BatchNorm before counting')
    parser.add_argument('--show-table', action='store_true', help="print mmengine's per-module table")
    return parser.parse_args(argv)


def backbone_report(archs: List[str], args: argparse.Namespace) -> List[dict]:
    size = parse_size(args.size or 224)
    window = tuple(args.window_size or (CLS_WINDOW_SIZE if size == (224, 224) else (7, 7, 7)))
    rows = []
    for arch in archs:
        model = BackboneFeatureMaps(build_backbone(arch, window_size=window))
        if args.deploy:
            deploy_model(model)
        stats = complexity(model, torch.zeros(1, 3, *size))
        row = dict(arch=arch, size=size, window=window, params=stats['params'], flops=stats['flops'],
                   matmul=stats['matmul_flops'])
        if size == (224, 224):
            cls = classifier_complexity(arch, deploy=True)
            row.update(cls_params=cls['params'], cls_flops=cls['flops'], paper=PAPER_MFLOPS[arch] * 1e6)
        rows.append(row)
        if args.show_table:
            print(complexity_stats_table(stats['analyzer'], show_param_shapes=False))
    state = 'deployed (BN folded)' if args.deploy else 'unfused'
    print(f'\nEfficientViT backbone, {state}, input {size[0]}×{size[1]}, windows {window} '
          '(FLOPs = multiply-adds, mmengine FlopAnalyzer)\n')
    header = '| arch | backbone params (M) | backbone MFLOPs | of which attention matmul |'
    if size == (224, 224):
        header += ' classifier params | classifier MFLOPs (deployed) | paper MFLOPs | diff |'
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for r in rows:
        line = (f"| {r['arch'].upper()} | {r['params'] / 1e6:.3f} | {r['flops'] / 1e6:.1f} | "
                f"{r['matmul'] / 1e6:.2f} |")
        if 'paper' in r:
            line += (f" {r['cls_params']:,} | {r['cls_flops'] / 1e6:.1f} | {r['paper'] / 1e6:.0f} | "
                     f"{100 * (r['cls_flops'] / r['paper'] - 1):+.1f}% |")
        print(line)
    return rows


def config_report(config: str, args: argparse.Namespace) -> dict:
    size = parse_size(args.size or '800x1333')
    stats = detector_complexity(load_config(config), size, deploy=args.deploy)
    input_size, divisor = stats['size'], stats['pad_size_divisor']
    state = 'deployed (BN folded)' if args.deploy else 'unfused'
    print(f'\n{os.path.basename(config)}, {state}, input {size[0]}×{size[1]} padded to '
          f'{input_size[0]}×{input_size[1]} (pad_size_divisor {divisor}); mmdet tensor mode '
          '(single-stage: backbone + neck + head, no NMS; two-stage: with RPN and RoI heads)')
    print(f"params: {stats['params'] / 1e6:.2f} M (backbone {stats['backbone_params'] / 1e6:.2f} M)")
    print(f"FLOPs:  {stats['flops'] / 1e9:.2f} G (backbone {stats['backbone_flops'] / 1e9:.2f} G)")
    print('by operator: ' + ', '.join(f'{k} {v / 1e9:.2f} G' for k, v in stats['by_operator'].items()))
    if args.show_table:
        print(complexity_stats_table(stats['analyzer'], show_param_shapes=False, max_depth=3))
    return dict(config=config, size=input_size, params=stats['params'], flops=stats['flops'],
                backbone_flops=stats['backbone_flops'])


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    target = args.target.lower()
    if target == 'all' or target in ARCHS:
        return backbone_report(list(ARCHS) if target == 'all' else [target], args)
    if '::' in args.target or os.path.isfile(args.target):
        return config_report(args.target, args)
    sys.exit(f"get_flops.py: {args.target!r} is neither a backbone arch ({', '.join(ARCHS)}, all) "
             'nor an existing config file')


if __name__ == '__main__':
    main()
