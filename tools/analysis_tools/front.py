"""The speed-accuracy front of demo configs: train each over seeds (or reuse finished work dirs), read
the final bbox mAP from the work dirs' result files, time every config's end-to-end graph at 640x640
(onnxruntime fp32 and INT8, OpenVINO f32) in one run, and write the CSV, the Markdown table and the
latency-mAP plot with the Pareto front.

    python tools/analysis_tools/front.py --configs configs/demo/rtmdet_evit_demo_shapes.py \\
        configs/demo/rtmdet_evit_m2_demo_shapes.py configs/demo/rtmdet_evit_m4_demo_shapes.py \\
        configs/demo/rtmdet_tiny_demo_shapes.py configs/demo/rtmdet_s_demo_shapes.py \\
        --baselines configs/demo/rtmdet_tiny_demo_shapes.py configs/demo/rtmdet_s_demo_shapes.py \\
        --seeds 0 1 --jobs 2 --out docs/results/front.csv

Runs train with ``tools/train.py CONFIG --cfg-options randomness.seed=K`` into
``<work-root>/<config name>/seed<K>/``, one thread each (``--jobs`` at a time); a finished work dir
(``epoch_<max_epochs>.pth`` and the last validation's ``coco/bbox_mAP`` in its result files) is
reused, never retrained unless ``--retrain``. ``ratio_to_tiny`` divides by ``--reference``'s
latency (mmdet's RTMDet-tiny on the same recipe); ``--baselines`` are the models the others must not
be beaten by on both axes. Latency uses the trained weights of the lowest seed (``--random-weights``:
mmdet's initialisers) with the benchmark's score biases (``benchmark.py --groups realtime``), so NMS
sees few boxes in every model and the rows compare the networks.

``--int8-map`` also measures what INT8 costs in accuracy: every run's checkpoint is exported end to
end as ``export_onnx.py --end2end --quantize int8`` exports it (at the config's test-pipeline size;
INT8 calibrated on the first ``--calib-num`` images of the config's training set) and both graphs
are scored on the config's val set as ``onnx_inference.py --eval`` scores them; the CSV and the
table get ``bbox_mAP_onnx_fp32``, ``bbox_mAP_int8`` and ``int8_loss`` (fp32 graph minus INT8
graph), each with its mean over seeds. Library: ``mmdet_efficientvit/analysis/front.py`` and
``mmdet_efficientvit/analysis/int8_accuracy.py``.
"""
import argparse
import sys
import time
from typing import List, Optional

import torch

from mmdet_efficientvit.analysis.benchmark.measure import add_timing_arguments
from mmdet_efficientvit.analysis.front import run_front, write_front
from mmdet_efficientvit.tools_support import short_errors

TINY = 'configs/demo/rtmdet_tiny_demo_shapes.py'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--configs', nargs='+', required=True, help='detector config files')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0],
                        help='training seeds (randomness.seed), each trained per config')
    parser.add_argument('--reference', default=TINY,
                        help='the config whose latency the ratio_to_tiny columns divide by (added '
                        'to --configs when not listed)')
    parser.add_argument('--baselines', nargs='*',
                        help='configs that define the line the others must be on or above '
                        '(default: the reference; added to --configs when not listed)')
    parser.add_argument('--work-root', default='work_dirs/front',
                        help='work dirs are <work-root>/<config name>/seed<K>')
    parser.add_argument('--jobs', type=int, default=1,
                        help='trainings at once, one thread each (2 on a 2-core machine)')
    parser.add_argument('--retrain', action='store_true',
                        help='train every run again, also those whose work dir finished')
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help="training options for every run (as train.py's), not model ones")
    parser.add_argument('--random-weights', action='store_true',
                        help="time mmdet's initialisers' weights instead of the trained ones")
    parser.add_argument('--int8-map', action='store_true',
                        help="also score every run's end-to-end graph and its INT8 copy on the "
                        'val set (columns bbox_mAP_onnx_fp32, bbox_mAP_int8, int8_loss)')
    parser.add_argument('--calib-num', type=int, default=64,
                        help="with --int8-map: training images that calibrate the INT8 ranges")
    parser.add_argument('--size', default='640x640', help='latency input, HxW (deployment size)')
    parser.add_argument('--threads', type=int, default=1, help='onnxruntime / OpenVINO threads')
    add_timing_arguments(parser, 'graph')
    parser.add_argument('--progress-every', type=float, default=30.0,
                        help='seconds between looks at the trainings')
    parser.add_argument('--out', default='docs/results/front.csv',
                        help='CSV path; the .md table and the .png plot go next to it')
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error('--jobs must be at least 1')
    if args.calib_num < 1:
        parser.error('--calib-num must be at least 1')
    return args


def main(argv: Optional[List[str]] = None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{(time.time() - t0) / 60:6.1f} min] {msg}', file=sys.stderr, flush=True)

    with short_errors():
        front = run_front(args.configs, args.reference, args.baselines or [args.reference],
                          args.seeds, args.work_root, args.cfg_options, args.jobs, args.retrain,
                          not args.random_weights, args.size, args.threads, args.repeats,
                          args.warmup, args.min_run_time, log, args.progress_every,
                          args.int8_map, args.calib_num)
    md, png = write_front(front, args.out)
    with open(md) as f:
        print(f.read())
    log(f'wrote {args.out}, {md}, {png}')
    return front


if __name__ == '__main__':
    main()
