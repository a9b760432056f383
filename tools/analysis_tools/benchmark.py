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
  (``configs/rtmdet_evit_m*_8xb32-300e_coco.py``), mmdet's RTMDet-tiny and, for scale,
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
import platform
import sys
import tempfile
import time
from typing import List

import torch

from mmdet_efficientvit.analysis.benchmark.cases import (DETECTORS, PRECISIONS, REALTIME_DETECTORS,
                                                         Case, amp_dtype, backbone_cases,
                                                         detector_cases, device_backbone_cases,
                                                         device_detector_cases, end2end_cases,
                                                         onnx_backbone_cases, openvino_precisions,
                                                         resolve_detector)
from mmdet_efficientvit.analysis.benchmark.measure import (measure_cuda_memory, measure_memory,
                                                           time_group)
from mmdet_efficientvit.analysis.benchmark.report import (CUDA_MEMORY_HEADER, MEMORY_HEADER,
                                                          markdown_table, plot, write_csv)
from mmdet_efficientvit.model_zoo import ARCHS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--groups', nargs='+', default=['backbone', 'detector', 'onnx'],
                        choices=['backbone', 'detector', 'onnx', 'end2end', 'realtime'])
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), choices=ARCHS)
    parser.add_argument('--detectors', nargs='+', default=list(DETECTORS), choices=list(DETECTORS),
                        help='evit-m0..evit-m5 (our configs), r18, r50 (mmdet::retinanet)')
    parser.add_argument('--backbone-size', default='224', help='backbone input, H or HxW')
    parser.add_argument('--batch-size', type=int, default=16, help='throughput batch for backbones')
    parser.add_argument('--det-size', default='800x1216', help='detector / ONNX input, HxW')
    parser.add_argument('--det-batch-size', type=int, default=0,
                        help='throughput batch at --det-size (0: latency only, the default)')
    parser.add_argument('--repeats', type=int, default=5, help='timed runs per model (median taken)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per model first')
    parser.add_argument('--min-run-time', type=float, default=0.3,
                        help='seconds per timed run (>=1 pass)')
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


DEVICE_GROUPS = ('backbone', 'detector')


def check_device_args(parser, args, argv) -> None:
    """--device: a device torch has, and only the groups the device protocol times."""
    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: torch sees no CUDA GPU here')
    other = sorted(set(args.groups) - set(DEVICE_GROUPS))
    if other and '--groups' in argv:
        parser.error(f'--device times the groups {DEVICE_GROUPS} only, not {other}')
    args.groups = [g for g in args.groups if g in DEVICE_GROUPS]


def measure_on_device(comparisons: List[List[Case]], args, log) -> None:
    """The device protocol's latency (bs=1), throughput (each case's batch) and CUDA peak memory."""
    cuda = torch.device(args.device).type == 'cuda'
    for i, group in enumerate(comparisons, 1):
        log(f'[{i}/{len(comparisons)}] timing {group[0].group}: '
            f'{", ".join(dict.fromkeys(c.model for c in group))}')
        latency = time_group(group, 1, args.repeats, args.warmup, args.min_run_time, log, args.device)
        batch = group[0].batch
        per_pass = (time_group(group, batch, args.repeats, args.warmup, args.min_run_time, log,
                               args.device) if batch else {})
        for c in group:
            c.latency_ms = latency[c.key] * 1e3
            if batch:
                c.throughput = batch / per_pass[c.key]
            if cuda and not args.no_memory:
                c.mem_bs1 = measure_cuda_memory(c, 1, args.device)
                if batch:
                    c.mem_bsn = measure_cuda_memory(c, batch, args.device)


def device_main(args, log) -> List[Case]:
    """``--device``: build, measure and report the device protocol (module doc)."""
    cuda = torch.device(args.device).type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cudnn pick its fastest kernels
    log(f'building models for {args.device}')
    comparisons = []
    if 'backbone' in args.groups:
        comparisons += device_backbone_cases(args.archs, args.backbone_size, args.device_batch_sizes,
                                             args.seed, args.device, tuple(args.precisions),
                                             args.channels_last, args.compile)
    if 'detector' in args.groups:
        comparisons += device_detector_cases(args.detectors, args.det_size, args.det_batch_size,
                                             args.seed, args.device, log, tuple(args.precisions),
                                             args.channels_last, args.compile)
    measure_on_device(comparisons, args, log)
    cases = [c for group in comparisons for c in group]
    name = torch.cuda.get_device_name(args.device) if cuda else platform.processor() or platform.machine()
    meta = dict(torch=torch.__version__, device=name, amp_dtype=str(amp_dtype(args.device)),
                repeats=args.repeats, cudnn_benchmark=cuda,
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    info = (f'torch {meta["torch"]} on {name}, amp = autocast {meta["amp_dtype"]}, median of '
            f'{args.repeats} runs, {meta["date"]}')
    write_outputs(cases, args, meta, info, log, CUDA_MEMORY_HEADER if cuda else MEMORY_HEADER,
                  'peak_cuda_mib')
    return cases


def write_outputs(cases: List[Case], args, meta: dict, info: str, log,
                  memory_header: str = MEMORY_HEADER, memory_column: str = 'peak_rss_mib') -> None:
    """The markdown table (printed and next to the CSV), the CSV and the optional plot."""
    table = markdown_table(cases, memory_header)
    print(table)
    print(f'\n{info}')
    write_csv(cases, args.out, meta, memory_column)
    with open(args.out.rsplit('.', 1)[0] + '.md', 'w') as f:
        f.write(table + f'\n\n{info}\n')
    log(f'wrote {args.out}')
    if args.plot:
        plot(cases, args.plot, info)
        log(f'wrote {args.plot}')


def measure(comparisons: List[List[Case]], args, log) -> None:
    """Latency (bs=1), throughput (bs=N where asked) and peak memory of every case, in place."""
    for i, group in enumerate(comparisons, 1):
        log(f'[{i}/{len(comparisons)}] timing {group[0].group}: '
            f'{", ".join(dict.fromkeys(c.model for c in group))}')
        latency = time_group(group, 1, args.repeats, args.warmup, args.min_run_time, log)
        for c in group:
            c.latency_ms = latency[c.key] * 1e3
        batch = group[0].batch
        if batch:
            per_pass = time_group(group, batch, args.repeats, args.warmup, args.min_run_time, log)
            for c in group:
                c.throughput = batch / per_pass[c.key]
        if args.no_memory:
            continue
        for c in group:
            if c.spec.get('compile'):
                continue  # a fresh process would measure the compiler, not inference
            c.mem_bs1 = measure_memory(c.spec, c.size, 1, args.threads)
            if batch:
                c.mem_bsn = measure_memory(c.spec, c.size, batch, args.threads)
        log('    memory measured')


def main(argv=None) -> List[Case]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:7.1f}s] {msg}', file=sys.stderr, flush=True)

    if args.device is not None:
        return device_main(args, log)
    notes = []  # what the report leaves out and why
    with tempfile.TemporaryDirectory() as tmpdir:
        log('building models')
        comparisons = []
        if 'backbone' in args.groups:
            comparisons += backbone_cases(args.archs, args.backbone_size, args.batch_size, args.seed,
                                          args.channels_last, args.compile)
        if 'onnx' in args.groups:
            comparisons += onnx_backbone_cases(args.archs, args.det_size, args.det_batch_size,
                                               args.seed, args.threads, tmpdir, log)
        if 'detector' in args.groups:
            comparisons += detector_cases(args.detectors, args.det_size, args.det_batch_size,
                                          args.seed, args.threads, tmpdir, log, args.unfused,
                                          tuple(args.nms_detectors), 'onnx' in args.groups)
        if 'end2end' in args.groups:
            precisions, note = openvino_precisions() if args.openvino_detectors else ((), None)
            notes += [note] if note else []
            realtime = [d for d in args.e2e_detectors if d in REALTIME_DETECTORS]
            for group, size, detectors in (
                    ('end2end', args.det_size, [d for d in args.e2e_detectors if d not in realtime]),
                    ('end2end@realtime', args.realtime_size, realtime)):
                if detectors:
                    comparisons += end2end_cases(detectors, size, args.seed, args.threads, tmpdir,
                                                 log, group=group,
                                                 openvino_detectors=args.openvino_detectors,
                                                 openvino_precisions=precisions)
        if 'realtime' in args.groups:
            detectors = list(dict.fromkeys(args.realtime_detectors + [args.realtime_reference]))
            comparisons += end2end_cases(detectors, args.realtime_size, args.seed, args.threads,
                                         tmpdir, log, group='realtime',
                                         reference=args.realtime_reference)
        measure(comparisons, args, log)
    cases = [c for group in comparisons for c in group]

    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    meta = dict(torch=torch.__version__, threads=args.threads, repeats=args.repeats,
                cpu=platform.processor() or platform.machine(), loadavg_at_end=load,
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    info = (f'torch {meta["torch"]}, {args.threads} threads, median of {args.repeats} runs, '
            f'load average at end {load}, {meta["date"]}')
    write_outputs(cases, args, meta, '\n'.join([info] + notes), log)
    return cases


if __name__ == '__main__':
    main()
