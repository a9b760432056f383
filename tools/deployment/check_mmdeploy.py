"""Export a RetinaNet/RTMDet config through mmdeploy 1.3.1 (with ``mmdet_efficientvit.compat.mmdeploy``)
and through ``export_onnx.py --end2end``, from the same weights, and compare their detections.

Both graphs run under onnxruntime on the same inputs: the first ``--num`` images of ``--images``,
preprocessed as ``onnx_inference.py`` (the runtime) does, and per image their detections are paired (same label,
scores within 1e-4, IoU > 0.99 or coordinates within 0.01 px: ``deployment/pairing.py``). Our graph
is also paired with PyTorch's ``predict``: where even those two differ, floating-point ties decide
(random weights whose scores saturate at 1.0). mmdeploy 1.3.1 does not apply
``test_cfg.min_bbox_size``: its lists may hold boxes clipped to zero width or height, which mmdet
drops; without them its detections must be our best. The tool exits 1 if mmdeploy differs
otherwise on an image where our graph and ``predict`` agree.
Without ``--checkpoint`` the weights are random, set as ``export_onnx.py`` sets them for its checks
(BatchNorm randomised and calibrated, head biases that put scores near 0.5).

Example (mmdeploy installed as docs/deployment.md says)::

    python tools/deployment/check_mmdeploy.py configs/demo/retinanet_evit_demo_shapes.py \\
        --checkpoint work_dirs/demo_shapes/epoch_10.pth --images data/demo_shapes/val --num 200
"""
import argparse
import os
import subprocess
import sys
from typing import List, Optional

from mmdet_efficientvit.compat import UnsupportedStackError
from mmdet_efficientvit.deployment.image_inputs import image_inputs
from mmdet_efficientvit.deployment.mmdeploy_parity import (DETECTION_DEPLOY_CONFIG,
                                                           compare_graphs, identical,
                                                           mmdeploy_export, random_check_weights)
from mmdet_efficientvit.deployment.pairing import pairing_rule
from mmdet_efficientvit.errors import SetupError
from mmdet_efficientvit.models.builders import build_detector
from mmdet_efficientvit.resources import config_path, tools_dir
from mmdet_efficientvit.tools_support import short_errors
from mmdet_efficientvit_runtime import image_paths, read_image


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Compare mmdeploy\'s ONNX export with ours')
    parser.add_argument('config', help='a RetinaNet or RTMDet config (file or mmdet_efficientvit:: name)')
    parser.add_argument('--checkpoint', help='detector weights (default: random check weights)')
    parser.add_argument('--images', required=True, help='folder of images to compare on')
    parser.add_argument('--num', type=int, default=20, help='images of --images to use (sorted)')
    parser.add_argument('--deploy-config', default=DETECTION_DEPLOY_CONFIG,
                        help='mmdeploy deploy config (file or shipped name)')
    parser.add_argument('--work-dir', default='work_dirs/mmdeploy_check',
                        help='where both graphs (and random weights) are written')
    parser.add_argument('--overwrite', action='store_true', help='replace files in --work-dir')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> List[dict]:
    args = parse_args(argv)
    try:  # before any slow step: mmdeploy missing or another release is one line
        import mmdet_efficientvit.compat.mmdeploy  # noqa: F401
    except UnsupportedStackError as err:
        sys.exit(f'error: {err}')
    config = args.config if os.path.isfile(args.config) else config_path(args.config)
    ours = os.path.join(args.work_dir, 'end2end_ours.onnx')
    theirs = os.path.join(args.work_dir, 'end2end_mmdeploy.onnx')
    weights = os.path.join(args.work_dir, 'random_weights.pth')
    written = [ours, theirs] + ([] if args.checkpoint else [weights])
    existing = [p for p in written if os.path.exists(p)]
    if existing and not args.overwrite:
        raise SetupError(f'{existing[0]} already exists: choose another --work-dir or pass --overwrite')
    os.makedirs(args.work_dir, exist_ok=True)
    checkpoint = args.checkpoint or random_check_weights(config, weights, args.seed)

    export = [sys.executable, os.path.join(tools_dir(), 'deployment', 'export_onnx.py'), config,
              '--checkpoint', checkpoint, '--end2end', '--out', ours, '--overwrite',
              '--check-sizes', '256x256', '--check-batch', '1']
    if subprocess.run(export).returncode != 0:
        sys.exit('export_onnx.py --end2end failed (its messages are above)')
    inputs = image_inputs(ours, args.images, args.num, '--images')
    mmdeploy_export(config, checkpoint, _first_image(args.images), theirs, args.deploy_config)
    print(f'exported {theirs} with mmdeploy.apis.torch2onnx ({args.deploy_config})')

    detector = build_detector(config, checkpoint)
    records = compare_graphs(ours, theirs, inputs, detector)
    whole = [identical(r['mmdeploy']) for r in records]
    total = {k: sum(r['mmdeploy'][k] for r in records) for k in ('ref', 'got', 'matched')}
    print(f"mmdeploy vs export_onnx.py --end2end on {len(records)} images of {args.images}: "
          f"{sum(whole)}/{len(records)} with the same detections ({pairing_rule()}); "
          f"{total['matched']} of {total['ref']} detections paired (mmdeploy {total['got']})")
    stable = [r for r in records if identical(r['predict'])]
    same = [r for r in stable if identical(r['mmdeploy'])]
    sized = [r for r in stable if not identical(r['mmdeploy']) and identical(r['sized'])]
    pairs = [r['mmdeploy'] for r in same] + [r['sized'] for r in sized]
    score = max((p['max_score_diff'] for p in pairs), default=0.)
    box = max((p['max_box_diff'] for p in pairs), default=0.)
    print(f'PyTorch predict vs export_onnx.py --end2end: {len(stable)}/{len(records)} images with the '
          f'same detections (on the others floating-point ties decide). On those {len(stable)}, '
          f'mmdeploy has the same detections on {len(same)}, and on {len(sized)} more once the '
          'boxes are dropped that mmdet drops and mmdeploy 1.3.1 keeps (width or height <= '
          'test_cfg.min_bbox_size: clipped to nothing at the border). Paired scores differ by '
          f'<= {score:.1e}, boxes by <= {box:.1e} px')
    differ = len(stable) - len(same) - len(sized)
    if differ:
        sys.exit(f'mmdeploy differs from our graph and PyTorch predict on {differ} images')
    return records


def _first_image(folder: str) -> str:
    """The image mmdeploy traces with: the first one ``image_inputs`` reads."""
    return next(p for p in image_paths(folder) if read_image(p) is not None)


if __name__ == '__main__':
    with short_errors():
        main()
