"""Export the EfficientViT backbone or a detector to ONNX and check it against PyTorch.

The graph has dynamic batch, height and width and is BN-folded (``deploy_model``) unless
``--no-deploy``. After export, onnxruntime is compared with PyTorch at every ``--check-sizes``
entry with batch ``--check-batch``; by default 256x256 (the last attention stage fits in one
window), 333x491 (not a multiple of 32: padded windows, odd map sizes) and 800x1216 (every stage
splits into windows), batch 2. A size at which PyTorch itself cannot run the model is reported and
skipped (mmdet's RTMDet-tiny, whose CSPNeXtPAFPN needs multiples of 32, at 333x491). The tool
exits non-zero when the check fails.

Three kinds of graph:

* a backbone arch (``m0`` .. ``m5``): the stage maps;
* a detector config: backbone + neck + head, returning the raw maps ``cls_score_{level}`` for every
  level, then ``bbox_pred_{level}`` (decoding and NMS stay outside; checked within ``--atol``);
* a RetinaNet, RTMDet or Mask R-CNN config with ``--end2end``: image batch to final detections in
  mmdeploy's convention, ``dets`` (B, K, 5: x1, y1, x2, y2, score) and ``labels`` (B, K; int64), K =
  ``max_per_img``; rows past an image's last detection have score 0 and label -1. Top-k, priors
  (anchors or points), decoding, score threshold, class-aware NMS and the final top-K run in the
  graph with the config's ``test_cfg`` (``mmdet_efficientvit/deployment/end2end/``). Mask R-CNN
  runs its RPN, RoIAlign (ONNX ``RoiAlign``, opset >= 16), box head and mask head in the graph too
  and adds ``masks`` (B, K, 28, 28): each detection's mask probabilities over its box, which the
  runtime pastes; its masks are checked pasted (mmdet's ``_do_paste_mask``, IoU > 0.98 with
  ``predict``'s). Other detectors are refused with a message naming the supported ones. The file's
  metadata holds the test preprocessing (resize, the pipeline's ``Pad`` if any, normalisation),
  class names, output convention, ``test_cfg`` and config that ``onnx_inference.py`` needs.
  Detections must match the detector's ``predict`` (same label, scores within 1e-4, IoU > 0.99 or
  coordinates within 0.01 px: ``mmdet_efficientvit/deployment/pairing.py``), also on
  ``--check-num`` real images of ``--check-images`` if given (read as ``onnx_inference.py`` reads
  them). With
  ``--quantize int8`` an INT8 copy (``<out>.int8.onnx``, onnxruntime static QDQ quantization,
  per-channel weights) is calibrated on ``--calib-num`` images of ``--calib-dir``; the float model
  is kept.

Examples::

    python tools/deployment/export_onnx.py m4 --out work_dirs/onnx/evit_m4.onnx
    python tools/deployment/export_onnx.py configs/retinanet_evit_m4_fpn_1x_coco.py \\
        --checkpoint work_dirs/retinanet_m4/epoch_12.pth --out work_dirs/onnx/retinanet_evit_m4.onnx
    python tools/deployment/export_onnx.py configs/demo/retinanet_evit_demo_shapes.py \\
        --checkpoint work_dirs/demo_shapes/epoch_10.pth --end2end --check-images data/demo_shapes/val \\
        --quantize int8 --calib-dir data/demo_shapes/train --calib-num 64
    python tools/deployment/export_onnx.py configs/rtmdet_evit_m0_8xb32-300e_coco.py --end2end \\
        --shape 640x640 --out work_dirs/onnx/rtmdet_evit_m0_random_end2end.onnx   # random weights
    python tools/deployment/export_onnx.py configs/mask_rcnn_evit_m4_fpn_1x_coco.py --end2end \\
        --checkpoint work_dirs/mask_rcnn_m4/epoch_12.pth --check-images data/coco/val2017

Without ``--checkpoint`` the weights are random, with randomised BatchNorm weights (fresh
EfficientViT zero-initialises several) and statistics measured on a random 800x1216 image, so
that every branch counts and no layer's output collapses to a constant. For ``--end2end`` the
head's output biases are also set (``deployment.end2end.randomize_for_check``) so that scores are
near 0.5, where the prior-probability bias would put them near 0.01, and boxes overlap their
neighbours, so NMS has work: RetinaNet's classification bias is zeroed; RTMDet's too, and its
regression bias gives boxes 8 strides wide (mmdet's init gives sub-pixel ones); Mask R-CNN's box
classifier bias lifts four classes above ``score_thr`` and the background below it, and its mask
logits' weights get zero mean per class so that masks are neither nearly full nor nearly empty.
"""
import argparse
import os
import sys
import time
from typing import List, Optional

import torch

from mmdet_efficientvit.deployment.check_weights import (CALIBRATION_SIZE, calibrate_batchnorm,
                                                        randomize_batchnorm)
from mmdet_efficientvit.deployment.end2end import (Network, check_supported, randomize_for_check,
                                                   wrap_end2end)
from mmdet_efficientvit.deployment.onnx_export import (DEFAULT_OPSET, check_end2end, check_onnx,
                                                       detections, export_onnx)
from mmdet_efficientvit.deployment.pairing import FOUND_AGAIN, match_detections, pairing_rule
from mmdet_efficientvit.deployment.traceable import BackboneFeatureMaps, RawDetector
from mmdet_efficientvit.errors import ConfigError, SetupError
from mmdet_efficientvit.model_zoo import ARCHS
from mmdet_efficientvit.models.builders import build_backbone, build_detector
from mmdet_efficientvit.models.utils import deploy_model
from mmdet_efficientvit.tools_support import parse_size, short_errors
from mmdet_efficientvit_runtime import OrtSession

DEFAULT_CHECK_SIZES = ['256x256', '333x491', '800x1216']


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export EfficientViT / a detector to ONNX')
    parser.add_argument('target', help='backbone arch (m0..m5) or a detector config file')
    parser.add_argument('--checkpoint', help='weights: an EfficientViT checkpoint for a backbone '
                        '(official, timm or ours), a detector checkpoint for a config')
    parser.add_argument('--out', help='output .onnx (default work_dirs/onnx/<target>[_end2end].onnx)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files')
    parser.add_argument('--end2end', action='store_true',
                        help='a RetinaNet, RTMDet or Mask R-CNN config with its post-processing '
                        '(top-k, decoding, NMS; RoIAlign and the RoI heads) in the graph: outputs '
                        'dets and labels (Mask R-CNN: and masks)')
    parser.add_argument('--shape', default='800x1216', help='export input HxW')
    parser.add_argument('--check-sizes', nargs='+', default=DEFAULT_CHECK_SIZES,
                        help='HxW sizes at which onnxruntime must match PyTorch')
    parser.add_argument('--check-batch', type=int, default=2, help='batch size of the check inputs')
    parser.add_argument('--check-images', metavar='DIR',
                        help='end2end: also compare with predict on real images of DIR, read as '
                        'onnx_inference.py reads them (one at a time)')
    parser.add_argument('--check-num', type=int, default=8, help='images of --check-images to use')
    parser.add_argument('--atol', type=float, default=1e-4,
                        help='largest output difference (end2end: score difference) allowed')
    parser.add_argument('--no-deploy', action='store_true', help='keep BatchNorm unfolded')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--quantize', choices=['int8'],
                        help='also write an INT8 model (end2end only): <out>.int8.onnx')
    parser.add_argument('--calib-dir', help='images to calibrate the INT8 ranges on')
    parser.add_argument('--calib-num', type=int, default=32, help='calibration images to use')
    args = parser.parse_args(argv)
    if args.quantize and not (args.end2end and args.calib_dir):
        parser.error('--quantize needs --end2end and --calib-dir')
    return args


def build(args: argparse.Namespace):
    """The model to export and its output names (for --end2end: the detector, not wrapped)."""
    torch.manual_seed(args.seed)
    if args.target.lower() in ARCHS and not args.end2end:
        arch = args.target.lower()
        model = BackboneFeatureMaps(build_backbone(arch, checkpoint=args.checkpoint))
        names = [f'stage{i}' for i in range(len(model.model.embed_dims))]
    elif os.path.isfile(args.target) or '::' in args.target:
        detector = build_detector(args.target, checkpoint=args.checkpoint)
        if args.end2end:
            family = check_supported(detector)  # before any slow step
            if args.opset < family.MIN_OPSET:
                raise ConfigError(f'--end2end export of {type(detector).__name__} needs --opset '
                                  f'{family.MIN_OPSET} or later, got {args.opset}')
            model, names = detector, list(family.OUTPUT_NAMES)
        else:
            if not hasattr(detector, 'bbox_head'):
                raise ConfigError(f'{type(detector).__name__} is not a single-stage detector, whose '
                                  'raw head maps this export writes: pass --end2end to export it '
                                  'with its post-processing')
            model = RawDetector(detector)
            levels = len(detector.bbox_head.prior_generator.strides)
            names = [f'cls_score_{i}' for i in range(levels)] + [f'bbox_pred_{i}' for i in range(levels)]
    else:
        arch = '' if args.end2end else f" nor a backbone arch ({', '.join(ARCHS)})"
        raise SetupError(f'{args.target!r} is not an existing config file{arch}')
    if args.checkpoint is None and args.end2end:
        randomize_for_check(model, args.seed)
    elif args.checkpoint is None:
        randomize_batchnorm(model, args.seed)
        calibrate_batchnorm(model, torch.randn(1, 3, *CALIBRATION_SIZE))
    return model.eval(), names


def export_end2end(args, detector, out: str, checks: List[torch.Tensor]) -> None:
    """Export with the metadata, check against ``predict``; optionally quantize."""
    from mmdet_efficientvit.deployment.end2end_export import export_end2end_onnx
    from mmdet_efficientvit.deployment.image_inputs import image_inputs

    start = time.time()
    model = export_end2end_onnx(detector, args.target, args.checkpoint, out, parse_size(args.shape),
                                args.opset)
    print(f'exported {out} in {time.time() - start:.1f}s (dynamic batch, height, width; opset '
          f'{args.opset}; test_cfg {model.test_cfg})')
    images = []
    if args.check_images:
        images = image_inputs(out, args.check_images, args.check_num, '--check-images')
    try:
        records = check_end2end(out, detector, checks + [torch.from_numpy(x) for x in images],
                                score_atol=args.atol)
    except RuntimeError as err:
        sys.exit(f'ONNX check FAILED: {err}')
    for i, r in enumerate(records):
        where = (f"at {r['shape']}" if i < len(checks)
                 else f'on image {i - len(checks) + 1} of {args.check_images} (sorted)')
        if 'skipped' in r:
            print(f"onnxruntime vs PyTorch predict {where}: NOT CHECKED, {r['skipped']}")
            continue
        masks = (f", pasted masks IoU >= {r['min_mask_iou']:.4f} ({r['masks']} judged)"
                 if 'masks' in r else '')
        print(f"onnxruntime vs PyTorch predict {where}: {r['matched']}/{r['ref']} detections "
              f"match ({pairing_rule()}; onnxruntime has {r['got']}), score diff "
              f"<= {r['max_score_diff']:.1e}, box diff <= {r['max_box_diff']:.1e} px{masks}: OK")
    if args.quantize:
        quantize(args, out, checks)


def quantize(args, out: str, checks: List[torch.Tensor]) -> str:
    """Write ``<out>.int8.onnx`` and report how its detections compare with the float graph's."""
    from mmdet_efficientvit.deployment.quantize import quantize_int8_on_images
    int8 = os.path.splitext(out)[0] + '.int8.onnx'
    start = time.time()
    num = quantize_int8_on_images(out, int8, args.calib_dir, args.calib_num, '--calib-dir')
    print(f'quantized {int8} in {time.time() - start:.1f}s (calibrated on {num} images of '
          f'{args.calib_dir}; the float model stays in {out})')
    fp32, q = OrtSession(out), OrtSession(int8)
    for x in checks:
        ref, got = fp32.run({'input': x.numpy()}), q.run({'input': x.numpy()})
        pairs = [match_detections(detections(ref[0][i], ref[1][i]), detections(got[0][i], got[1][i]),
                                  **FOUND_AGAIN) for i in range(x.shape[0])]
        total = {k: sum(p[k] for p in pairs) for k in ('ref', 'got', 'matched')}
        print(f"INT8 vs float at {tuple(x.shape)}: {total['got']} detections, {total['matched']} of "
              f"the float model's {total['ref']} found again ({pairing_rule(**FOUND_AGAIN)})")
    return int8


def main(argv: Optional[List[str]] = None) -> str:
    args = parse_args(argv)
    name = os.path.splitext(os.path.basename(args.target))[0] + ('_end2end' if args.end2end else '')
    out = args.out or os.path.join('work_dirs', 'onnx', f'{name}.onnx')
    outputs = [out] + ([os.path.splitext(out)[0] + '.int8.onnx'] if args.quantize else [])
    existing = [p for p in outputs if os.path.exists(p)]
    if existing and not args.overwrite:
        raise SetupError(f'{existing[0]} already exists: choose another --out or pass --overwrite')
    model, names = build(args)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    checks = [torch.randn(args.check_batch, 3, *parse_size(s)) for s in args.check_sizes]
    raw = Network(wrap_end2end(model)) if args.end2end else model
    if not args.no_deploy:
        with torch.no_grad():
            before = [raw(x) for x in checks[:1]]
        deploy_model(model)
        with torch.no_grad():
            diff = max(float((a - b).abs().max()) for x, ref in zip(checks, before)
                       for a, b in zip(raw(x), ref))
        print(f'deployed (BN folded); max |deployed - unfused| in PyTorch: {diff:.2e}')
    if args.end2end:
        export_end2end(args, model, out, checks)
        return out
    start = time.time()
    export_onnx(model, out, torch.randn(1, 3, *parse_size(args.shape)), names, opset=args.opset)
    print(f'exported {out} in {time.time() - start:.1f}s (dynamic batch, height, width; opset {args.opset})')
    try:
        records = check_onnx(out, model, checks, atol=args.atol)
    except RuntimeError as err:
        sys.exit(f'ONNX check FAILED: {err}')
    for r in records:
        if 'skipped' in r:
            print(f"onnxruntime vs PyTorch at {r['shape']}: NOT CHECKED, {r['skipped']}")
            continue
        print(f"onnxruntime vs PyTorch at {r['shape']}: max |diff| "
              f"{r['max_abs_diff']:.2e} (largest output {r['max_abs_ref']:.2f}) <= {args.atol:g}: OK")
    return out


if __name__ == '__main__':
    with short_errors():
        main()
