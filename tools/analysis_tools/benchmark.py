"""Benchmark EfficientViT backbones and detectors on this machine, side by side.

Groups (select with ``--groups``):

* ``backbone``: our backbone M0-M5 at ``--backbone-size`` (224), unfused and deployed
  (``switch_to_deploy``), optionally channels_last / ``torch.compile``, next to timm's
  ``efficientvit_m*`` carrying the *same weights* (timm's seeded random init, converted into our
  layout by our checkpoint converter).
* ``detector``: RetinaNet-EfficientViT-M0..M5 (``configs/retinanet_evit_m*_fpn_1x_coco.py``) and
  mmdet's RetinaNet-R18/R50 at ``--det-size`` (800x1216), BN-fused, without NMS (raw maps) and, for
  ``--nms-detectors``, with NMS (``predict``). Weights come from mmdet's initialisers with the
  backbone's ``init_cfg`` dropped (nothing is downloaded); RetinaNet's prior-probability bias puts
  every score near 0.01, below ``score_thr`` 0.05, so the NMS rows time the post-processing path
  with almost no boxes (a lower bound: a trained model on a busy image keeps more candidates).
* ``onnx``: the deployed backbone (and with ``detector`` also the detector without NMS) exported to
  ONNX and run under onnxruntime at ``--det-size``, next to eager PyTorch deployed.
* ``end2end``: image tensor to final boxes, bs=1, for ``--e2e-detectors``, RetinaNets at
  ``--det-size`` and the real-time keys (``rtmdet-*``) at ``--realtime-size`` (as the group
  ``end2end@realtime``): eager ``predict`` (deployed, with NMS) vs the end-to-end ONNX graph
  (``export_onnx.py --end2end``) under onnxruntime in fp32 and INT8 and, for
  ``--openvino-detectors``, under OpenVINO in f32 and bf16 (bf16 only where the CPU has it: the
  report says so in a note line; no OpenVINO rows where OpenVINO is not installed). Not in the
  default groups: export and quantization take minutes. Random weights, with the classification
  biases set so that scores sit below ``score_thr``: NMS sees few boxes in every variant.
* ``realtime``: the same three variants at ``--realtime-size`` (640x640, RTMDet's) for
  ``--realtime-detectors``: the real-time EfficientViT detectors
  (``configs/rtmdet_evit_m*_8xb32-300e_coco.py``, keys ``rtmdet-evit-m0`` ...; the depthwise ones
  ``rtmdet-evit-m0-dw`` ...), mmdet's RTMDet-tiny and, for scale,
  RetinaNet-EfficientViT-M0; every row against ``--realtime-reference``'s row of the same variant
  (RTMDet-tiny; not in the default groups). Both options also take config files, e.g. the
  stride-bridge ablations of ``docs/realtime.md`` (``configs/demo/ablations/*.py``).

How cases are timed and how memory is measured: ``mmdet_efficientvit/analysis/benchmark/measure.py``.

With ``--device cuda`` (or any device, ``cpu`` included) the *device protocol* runs instead: the
``backbone`` group at ``--backbone-size`` with throughput at each of ``--device-batch-sizes`` (default
256 and 2048: the paper's GPU protocol), timm vs ours with the same weights, and the ``detector`` group
(BN-fused, no NMS) at ``--det-size`` with throughput at ``--det-batch-size``, each in every
``--precisions`` (fp32; amp = autocast, float16 on CUDA, bfloat16 on the CPU) and with
``--channels-last`` / ``--compile`` variants; timed between ``torch.cuda.synchronize`` calls, peak memory
from ``torch.cuda.max_memory_allocated`` (none on the CPU), cudnn autotuning on.

Example (the README's run)::

    python tools/analysis_tools/benchmark.py --threads 1 --channels-last --out docs/results/benchmark_1thread.csv --plot docs/results/speed_1thread.png
    python tools/analysis_tools/benchmark.py --groups backbone --archs m0 --repeats 3  # quick
    python tools/analysis_tools/benchmark.py --groups realtime --threads 1 --no-memory \
        --out docs/results/realtime_1thread.csv --plot docs/results/realtime_1thread.png
    python tools/analysis_tools/benchmark.py --device cuda --channels-last --compile \
        --detectors evit-m4 r50 --det-batch-size 8 --out work_dirs/benchmark/cuda.csv  # GPU protocol
"""
import argparse
import sys
import time
from typing import List, Optional

import torch

from mmdet_efficientvit.analysis.benchmark.cases import (DETECTORS, PRECISIONS, REALTIME_DETECTORS,
                                                         Case, resolve_detector)
from mmdet_efficientvit.analysis.benchmark.measure import add_timing_arguments
from mmdet_efficientvit.analysis.benchmark.protocol import (DEFAULT_GROUPS, DEVICE_GROUPS, GROUPS,
                                                            run_benchmark)
from mmdet_efficientvit.model_zoo import ARCHS


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--groups', nargs='+', default=list(DEFAULT_GROUPS), choices=list(GROUPS))
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=ARCHS)
    parser.add_argument('--detectors', nargs='+', default=list(DETECTORS), choices=list(DETECTORS),
                        help='evit-m0..evit-m5 (our configs), r18, r50 (mmdet::retinanet)')
    parser.add_argument('--backbone-size', default='224', help='backbone input, H or HxW')
    parser.add_argument('--batch-size', type=int, default=16, help='throughput batch for backbones')
    parser.add_argument('--det-size', default='800x1216', help='detector / ONNX input, HxW')
    parser.add_argument('--det-batch-size', type=int, default=0,
                        help='throughput batch at --det-size (0: latency only, the default)')
    add_timing_arguments(parser)
    parser.add_argument('--threads', type=int, default=2, help='torch and onnxruntime intra-op threads')
    parser.add_argument('--channels-last', action='store_true', help='also time deployed + channels_last')
    parser.add_argument('--compile', action='store_true', help='also time deployed + torch.compile')
    parser.add_argument('--unfused', action='store_true', help='also time the detectors unfused')
    parser.add_argument('--nms-detectors', nargs='*', default=['evit-m4', 'r50'], choices=list(DETECTORS),
                        help='detectors that also get a row with NMS (predict); none: no NMS rows')
    parser.add_argument('--e2e-detectors', nargs='+',
                        default=['evit-m0', 'evit-m4', 'r50', 'rtmdet-evit-m0'],
                        help='detectors of the end2end group: keys (as --realtime-detectors) or '
                        'config files; real-time keys run at --realtime-size, the rest at --det-size')
    parser.add_argument('--openvino-detectors', nargs='*', default=['evit-m4', 'rtmdet-evit-m0'],
                        help='those of --e2e-detectors that also get OpenVINO f32 and bf16 rows '
                        '(none: no OpenVINO rows)')
    parser.add_argument('--realtime-detectors', nargs='+',
                        default=['rtmdet-evit-m0', 'rtmdet-evit-m2', 'rtmdet-evit-m4', 'rtmdet-tiny',
                                 'evit-m0'],
                        help=f'detectors of the realtime group: {", ".join(REALTIME_DETECTORS)}, a '
                        f'RetinaNet key ({", ".join(DETECTORS)}) for scale, or config files (e.g. '
                        'configs/demo/ablations/*.py)')
    parser.add_argument('--realtime-reference', default='rtmdet-tiny',
                        help='the realtime detector every realtime row is compared with (key or config)')
    parser.add_argument('--realtime-size', default='640x640', help='realtime group input, HxW')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device',
                        help='run the device protocol (module doc) on this device: cuda, cuda:1, cpu')
    parser.add_argument('--precisions', nargs='+', default=list(PRECISIONS), choices=PRECISIONS,
                        help='device protocol: fp32, amp (autocast: float16 on CUDA, bfloat16 on CPU)')
    parser.add_argument('--device-batch-sizes', nargs='+', type=int, default=[256, 2048],
                        help='device protocol: backbone throughput batches (the paper: 256, 2048)')
    parser.add_argument('--out', default='work_dirs/benchmark/benchmark.csv',
                        help='CSV path; the markdown table goes next to it (.md)')
    parser.add_argument('--plot', help='PNG path for latency vs FLOPs (e.g. docs/results/speed_1thread.png)')
    args = parser.parse_args(argv)
    for det in args.e2e_detectors + args.realtime_detectors + [args.realtime_reference]:
        try:
            resolve_detector(det)
        except ValueError as err:
            parser.error(str(err))
    if args.device is not None:
        check_device_args(parser, args, sys.argv[1:] if argv is None else argv)
    return args


def check_device_args(parser, args, argv) -> None:
    """--device: a device torch has, and only the groups the device protocol times."""
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: torch sees no CUDA GPU here')
    other = sorted(set(args.groups) - set(DEVICE_GROUPS))
    if other and '--groups' in argv:
        parser.error(f'--device times the groups {tuple(DEVICE_GROUPS)} only, not {other}')
    args.groups = [g for g in args.groups if g in DEVICE_GROUPS]


def main(argv: Optional[List[str]] = None) -> List[Case]:
    args = parse_args(argv)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:7.1f}s] {msg}', file=sys.stderr, flush=True)

    return run_benchmark(args, log)


if __name__ == '__main__':
    main()
