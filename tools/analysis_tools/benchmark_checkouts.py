"""Eager ``predict`` latency of two checkouts of this repository, interleaved (a change's before/after).

Times RTMDet-EfficientViT-M0 at 640x640 and RetinaNet-EfficientViT-M4 at 800x1216 (random weights,
scores below ``score_thr``), unfused and deployed (BN folded), bs=1 under ``torch.no_grad`` as
mmengine's test loop runs them; each checkout in its own worker process, runs alternating between the
two (``mmdet_efficientvit/analysis/benchmark/checkouts.py``).

Example (docs/backbone.md)::

    git worktree add ../before main
    python tools/analysis_tools/benchmark_checkouts.py --before ../before --after . --threads 1 \
        --out docs/results/predict_checkouts_1thread.csv
"""
import argparse
import platform
import sys
import time

from mmdet_efficientvit.analysis.benchmark.cases import PREDICT_DETECTORS, predict_specs
from mmdet_efficientvit.analysis.benchmark.checkouts import compare_checkouts, write_rows
from mmdet_efficientvit.analysis.benchmark.report import load_average, utc_date
from mmdet_efficientvit.tools_support import short_errors


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--before', required=True, help='root of the checkout before the change')
    parser.add_argument('--after', default='.', help='root of the checkout after it (default: here)')
    parser.add_argument('--threads', type=int, default=1, help='torch intra-op threads')
    parser.add_argument('--repeats', type=int, default=15, help='timed runs per case (median taken)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed passes per case first')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmark/predict_checkouts.csv',
                        help='CSV path; the markdown table goes next to it (.md)')
    args = parser.parse_args(argv)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:7.1f}s] {msg}', file=sys.stderr, flush=True)

    with short_errors():  # not a checkout; a worker that stopped
        rows = compare_checkouts(args.before, args.after, predict_specs(PREDICT_DETECTORS),
                                 args.threads, args.repeats, args.warmup, args.seed, log)
    table = write_rows(rows, args.out)
    info = (f'{platform.processor() or platform.machine()}, {args.threads} thread(s), median of '
            f'{args.repeats} runs, load average at end {load_average()}, {utc_date()}')
    print(f'{table}\n\n{info}')
    with open(args.out.rsplit('.', 1)[0] + '.md', 'w') as f:
        f.write(f'{table}\n\n{info}\n')
    log(f'wrote {args.out}')


if __name__ == '__main__':
    main()
