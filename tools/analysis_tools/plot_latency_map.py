"""Plot latency against accuracy: one variant's latencies from a benchmark CSV, each model at the mAP
it reached on DemoShapes (the real-time comparison of docs/realtime.md).

    python tools/analysis_tools/plot_latency_map.py docs/results/realtime_1thread.csv \
        --map RTMDet-EfficientViT-M0=0.60 RTMDet-tiny=0.61 \
        [--variant 'onnxruntime end2end fp32'] [--out docs/results/realtime_latency_map.png]

Latencies come from ``benchmark.py --groups realtime`` (640x640, random weights); the mAPs from the
demo runs (``make demo-realtime``, ``DEMO=realtime-tiny bash tools/run_demo.sh``), which train each
model with one recipe. Models without an mAP are left out; a model named in ``--map`` but absent from
the CSV is an error. The plot is the speed-accuracy front's (``mmdet_efficientvit.analysis.front``),
with its Pareto line; ``front.py`` makes the same plot with mAPs it reads from training runs.
"""
import argparse
import sys
from typing import Dict, List, Optional

from mmdet_efficientvit.analysis.benchmark.report import read_latencies
from mmdet_efficientvit.analysis.front import plot_front
from mmdet_efficientvit.tools_support import short_errors
from mmdet_efficientvit.errors import SetupError


def parse_maps(items: List[str]) -> Dict[str, float]:
    maps = {}
    for item in items:
        model, sep, value = item.rpartition('=')
        try:
            maps[model] = float(value)
        except ValueError:
            sep = ''
        if not sep or not model:
            raise SetupError(f'--map {item!r} is not MODEL=MAP (e.g. RTMDet-tiny=0.61)')
    return maps


def main(argv: Optional[List[str]] = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('csv', help='a benchmark.py CSV (e.g. --groups realtime)')
    parser.add_argument('--map', nargs='+', required=True, metavar='MODEL=MAP',
                        help='demo bbox mAP per model, models named as in the CSV')
    parser.add_argument('--variant', default='onnxruntime end2end fp32')
    parser.add_argument('--out', default='docs/results/realtime_latency_map.png')
    parser.add_argument('--title', default='DemoShapes bbox mAP vs latency at 640x640, bs=1')
    args = parser.parse_args(argv)
    with short_errors():
        maps, lat = parse_maps(args.map), read_latencies(args.csv, args.variant)
        missing = sorted(set(maps) - set(lat))
        if missing:
            raise SetupError(f'{args.csv} has no {args.variant!r} row for {missing}; models there: '
                             f'{sorted(lat)}')
    plot_front({m: (lat[m], v) for m, v in maps.items()}, args.out, args.title,
               xlabel=f'latency (ms, median), {args.variant}')
    print(f'wrote {args.out}')
    return args.out


if __name__ == '__main__':
    sys.exit(main() and 0)
