"""Benchmark EfficientViT backbones and detectors on this machine, side by side.

Groups (select with ``--groups``):

* ``backbone``: our backbone M0-M5 at ``--backbone-size`` (224), unfused and deployed
  (``switch_to_deploy``), optionally channels_last / ``torch.compile``, next to timm's
  ``efficientvit_m*`` carrying the *same weights* (timm's seeded random init, converted into our
  layout by our checkpoint converter; the outputs are checked to agree before timing).
* ``detector``: RetinaNet-EfficientViT-M0..M5 (``configs/retinanet_evit_m*_fpn_1x_coco.py``) and
  mmdet's RetinaNet-R18/R50 at ``--det-size`` (800x1216), BN-fused, without NMS (raw maps) and, for
  ``--nms-detectors``, with NMS (``predict``). Weights come from mmdet's initialisers with the
  backbone's ``init_cfg`` dropped (nothing is downloaded); RetinaNet's prior-probability bias puts
  every score near 0.01, below ``score_thr`` 0.05, so the NMS rows time the post-processing path
  with almost no boxes (a lower bound: a trained model on a busy image keeps more candidates).
* ``onnx``: the deployed backbone (and with ``detector`` also the detector without NMS) exported to
  ONNX and run under onnxruntime at ``--det-size``, next to eager PyTorch deployed.

Models of one comparison are timed interleaved (one run of each in turn, ``--repeats`` times) so that
load from other processes hits them alike; every figure is the median over the repeats. One run is
``k`` forward passes with ``k`` chosen at warm-up so that a run lasts about ``--min-run-time`` s.
Peak memory is measured in a fresh subprocess per model and batch size: after the model and the
input are built, the freed heap is returned to the OS (``malloc_trim``) and the peak resident set
size is reset (``/proc/self/clear_refs``); the figure is the peak RSS (VmHWM) over the first two
forward passes minus the RSS just before them, i.e. what running inference adds to the built model
and input: activations, workspaces, kernel caches, onnxruntime's arena. Same method for torch and
onnxruntime.

Example (the README's run)::

    python tools/analysis_tools/benchmark.py --channels-last --out docs/benchmark.csv --plot docs/speed.png
    python tools/analysis_tools/benchmark.py --groups backbone --archs m0 --repeats 3  # quick
"""
import argparse
import copy
import csv
import ctypes
import ctypes.util
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from mmdet_efficientvit.utils.analysis import (ARCHS, CLS_WINDOW_SIZE, Backbone, RawDetector,
                                               build_backbone, build_detector, complexity,
                                               deploy_model, image_data_samples, parse_size,
                                               randomize_batchnorm)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DETECTORS = {f'evit-{a}': os.path.join(REPO, f'configs/retinanet_evit_{a}_fpn_1x_coco.py') for a in ARCHS}
DETECTORS.update({
    'r18': 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    'r50': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
})
DETECTOR_NAMES = {**{f'evit-{a}': f'RetinaNet-EfficientViT-{a.upper()}' for a in ARCHS},
                  'r18': 'RetinaNet-R18', 'r50': 'RetinaNet-R50'}
MEMORY_HEADER = 'peak RSS added by inference (MiB)'


# --------------------------------------------------------------------------------------------------
# Model specs: what a memory worker needs to rebuild a case on its own
# --------------------------------------------------------------------------------------------------
def build_runner(spec: Dict, onnx_threads: int) -> Callable:
    """Build the callable for one benchmark case from its JSON-able spec (weights: random)."""
    kind = spec['kind']
    if kind == 'onnx':
        from mmdet_efficientvit.utils.onnx_export import ort_session
        session = ort_session(spec['onnx_path'], threads=onnx_threads)
        return lambda x: session.run(None, {'input': x.numpy()})
    if kind == 'evit':
        model = Backbone(build_backbone(spec['arch'], window_size=spec['window_size']))
    elif kind == 'timm':
        import timm
        model = Backbone(timm.create_model(f"efficientvit_{spec['arch']}", pretrained=False, num_classes=0))
    elif kind == 'detector':
        model = build_detector(spec['config'])
    else:
        raise ValueError(f'unknown case kind {kind!r}')
    if spec.get('deploy'):
        deploy_model(model)
    if kind == 'detector':
        return detector_runner(model, spec.get('nms', False))
    return finish_runner(model.eval(), spec)


def finish_runner(model: nn.Module, spec: Dict) -> Callable:
    """Apply channels_last / torch.compile as the spec asks."""
    if spec.get('channels_last'):
        model = model.to(memory_format=torch.channels_last)
    if spec.get('compile'):
        model = torch.compile(model)
    if spec.get('channels_last'):
        return lambda x: model(x.contiguous(memory_format=torch.channels_last))
    return model


def detector_runner(model: nn.Module, nms: bool) -> Callable:
    """Raw maps (no NMS) or ``predict`` with NMS; inputs are already normalised and padded."""
    if not nms:
        return RawDetector(model).eval()
    def predict(x: torch.Tensor):
        return model.predict(x, image_data_samples(x))

    return predict


# --------------------------------------------------------------------------------------------------
# Cases and measuring
# --------------------------------------------------------------------------------------------------
@dataclass
class Case:
    group: str                       # 'backbone', 'backbone@det', 'detector'
    model: str                       # display name
    variant: str                     # 'timm', 'unfused', 'deployed', ...
    size: Tuple[int, int]
    spec: Dict
    run: Callable
    batch: int                       # throughput batch size (0: latency only)
    params: int = 0
    flops: int = 0
    reference: Optional[str] = None  # key of the case ratios are taken against
    key: str = ''                    # 'group|model|variant'
    latency_ms: float = float('nan')
    throughput: float = float('nan')
    mem_bs1: float = float('nan')
    mem_bsn: float = float('nan')


def time_group(cases: List[Case], batch: int, repeats: int, warmup: int, min_run_time: float,
               log: Callable) -> Dict[str, float]:
    """Median seconds per forward pass of each case, runs interleaved; ``batch`` images per pass."""
    inputs = {c.key: torch.randn(batch, 3, *c.size) for c in cases}
    iters = {}
    with torch.inference_mode():
        for c in cases:  # warm-up, and pick the passes per run
            start = time.perf_counter()
            for _ in range(warmup):
                c.run(inputs[c.key])
            per_pass = (time.perf_counter() - start) / max(warmup, 1)
            iters[c.key] = max(1, int(round(min_run_time / max(per_pass, 1e-6))))
        samples = {c.key: [] for c in cases}
        for r in range(repeats):
            for c in cases:
                start = time.perf_counter()
                for _ in range(iters[c.key]):
                    c.run(inputs[c.key])
                samples[c.key].append((time.perf_counter() - start) / iters[c.key])
            log(f'    repeat {r + 1}/{repeats} (bs={batch}) done')
    return {k: statistics.median(v) for k, v in samples.items()}


def measure_memory(spec: Dict, size: Tuple[int, int], batch: int, threads: int) -> float:
    """Peak RSS that inference adds, in MiB, measured in a fresh subprocess (see module doc)."""
    payload = json.dumps(dict(spec=spec, size=size, batch=batch, threads=threads))
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), '--memory-worker', payload],
                          capture_output=True, text=True, cwd=REPO)
    match = re.search(r'^PEAK_MIB (\S+)$', proc.stdout, re.M)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f'memory worker failed for {spec}:\n{proc.stderr[-3000:]}')
    return float(match.group(1))


def memory_worker(payload: str) -> None:
    """Subprocess side of ``measure_memory``: build, trim the heap, reset the high-water mark, run."""
    args = json.loads(payload)
    torch.set_num_threads(args['threads'])
    run = build_runner(args['spec'], onnx_threads=args['threads'])
    x = torch.randn(args['batch'], 3, *args['size'])

    def status(key: str) -> int:
        with open('/proc/self/status') as f:
            return int(re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M).group(1))

    # Hand the heap that building freed back to the OS, or inference would reuse it unseen.
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library('c')).malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current RSS
    before = status('VmRSS')
    with torch.inference_mode():
        for _ in range(2):
            run(x)
    print(f"PEAK_MIB {(status('VmHWM') - before) / 1024:.1f}")


# --------------------------------------------------------------------------------------------------
# Building the comparisons
# --------------------------------------------------------------------------------------------------
def timm_to_ours(arch: str, seed: int) -> Tuple[nn.Module, nn.Module, float]:
    """timm's model (seeded random init, BN randomised) and ours with the same weights.

    Returns (timm backbone, our backbone, max |difference| of their outputs at 224).
    """
    import timm
    from mmdet_efficientvit.models.utils.checkpoint import load_state_dict_checked, timm_to_official

    torch.manual_seed(seed)
    ref = timm.create_model(f'efficientvit_{arch}', pretrained=False, num_classes=0)
    ref = randomize_batchnorm(ref, seed).eval()
    ours = build_backbone(arch, window_size=CLS_WINDOW_SIZE)
    load_state_dict_checked(ours, timm_to_official(ref.state_dict()), f'timm efficientvit_{arch}',
                            ours.arch_zoo, ours.arch_name)
    ref, ours = Backbone(ref).eval(), Backbone(ours).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = max(float((a - b).abs().max()) for a, b in zip(ref(x), ours(x)))
    return ref, ours, diff


def backbone_cases(args, log) -> List[List[Case]]:
    size = parse_size(args.backbone_size)
    window = CLS_WINDOW_SIZE if size == (224, 224) else (7, 7, 7)
    groups = []
    for arch in args.archs:
        ref, ours, diff = timm_to_ours(arch, args.seed)
        if diff > 1e-4:
            raise RuntimeError(f'ours and timm {arch} disagree by {diff:.3g} with the same weights')
        log(f'  {arch}: ours == timm on the same weights (max |diff| {diff:.2e})')
        deployed = deploy_model(copy.deepcopy(ours))
        spec = dict(kind='evit', arch=arch, window_size=list(window))
        img = torch.randn(1, 3, *size)
        flops_unfused = complexity(ours, img)
        flops_deployed = complexity(deployed, img)
        name = f'EfficientViT-{arch.upper()}'
        cases = [
            Case('backbone', name, 'timm (unfused)', size, dict(kind='timm', arch=arch), ref, args.batch_size,
                 flops_unfused['params'], complexity(ref, img)['flops']),
            Case('backbone', name, 'ours unfused', size, spec, ours, args.batch_size,
                 flops_unfused['params'], flops_unfused['flops']),
            Case('backbone', name, 'ours deployed', size, dict(spec, deploy=True), deployed, args.batch_size,
                 flops_deployed['params'], flops_deployed['flops']),
        ]
        for flag, label in (('channels_last', 'channels_last'), ('compile', 'torch.compile')):
            if getattr(args, flag):
                s = dict(spec, deploy=True, **{flag: True})
                cases.append(Case('backbone', name, f'ours deployed + {label}', size, s,
                                  finish_runner(copy.deepcopy(deployed), s), args.batch_size,
                                  flops_deployed['params'], flops_deployed['flops']))
        for c in cases:
            c.reference = f'backbone|{name}|timm (unfused)'
        groups.append(cases)
    return groups


def onnx_backbone_cases(args, tmpdir: str, log) -> List[List[Case]]:
    from mmdet_efficientvit.utils.onnx_export import check_onnx, export_onnx, ort_session
    size = parse_size(args.det_size)
    groups = []
    for arch in args.archs:
        torch.manual_seed(args.seed)
        model = Backbone(deploy_model(randomize_batchnorm(build_backbone(arch), args.seed)))
        path = export_onnx(model, os.path.join(tmpdir, f'evit_{arch}.onnx'), torch.randn(1, 3, *size))
        session = ort_session(path, threads=args.threads)
        records = check_onnx(path, model, [torch.randn(1, 3, *size)], session=session)
        log(f'  {arch}: ONNX backbone exported, max |onnxruntime - PyTorch| {records[0]["max_abs_diff"]:.2e}')
        stats = complexity(model, torch.randn(1, 3, *size))
        name = f'EfficientViT-{arch.upper()}'
        spec = dict(kind='evit', arch=arch, window_size=[7, 7, 7], deploy=True)
        eager = Case('backbone@det', name, 'ours deployed', size, spec, model, args.det_batch_size,
                     stats['params'], stats['flops'])
        ort_case = Case('backbone@det', name, 'onnxruntime', size, dict(kind='onnx', onnx_path=path),
                        lambda x, s=session: s.run(None, {'input': x.numpy()}), args.det_batch_size,
                        stats['params'], stats['flops'])
        eager.reference = ort_case.reference = f'backbone@det|{name}|ours deployed'
        groups.append([eager, ort_case])
    return groups


def detector_cases(args, tmpdir: str, log) -> List[List[Case]]:
    size = parse_size(args.det_size)
    cases = []
    for det in args.detectors:
        config = DETECTORS[det]
        torch.manual_seed(args.seed)
        model = build_detector(config)
        name = DETECTOR_NAMES[det]
        spec = dict(kind='detector', config=config)
        img = torch.randn(1, 3, *size)
        if args.unfused:
            raw = RawDetector(model).eval()
            stats = complexity(raw, img)
            cases.append(Case('detector', name, 'unfused, no NMS', size, spec, raw, args.det_batch_size,
                              stats['params'], stats['flops']))
        deployed = deploy_model(copy.deepcopy(model))
        raw = RawDetector(deployed).eval()
        stats = complexity(raw, img)
        cases.append(Case('detector', name, 'deployed, no NMS', size, dict(spec, deploy=True), raw,
                          args.det_batch_size, stats['params'], stats['flops']))
        if det in args.nms_detectors:
            cases.append(Case('detector', name, 'deployed + NMS', size, dict(spec, deploy=True, nms=True),
                              detector_runner(deployed, nms=True), args.det_batch_size,
                              stats['params'], stats['flops']))
        if 'onnx' in args.groups:
            from mmdet_efficientvit.utils.onnx_export import check_onnx, export_onnx, ort_session
            path = export_onnx(raw, os.path.join(tmpdir, f'{det}.onnx'), img)
            session = ort_session(path, threads=args.threads)
            diff = check_onnx(path, raw, [img], session=session)[0]['max_abs_diff']
            log(f'  {name}: ONNX (no NMS) exported, max |onnxruntime - PyTorch| {diff:.2e}')
            cases.append(Case('detector', name, 'onnxruntime, no NMS', size, dict(kind='onnx', onnx_path=path),
                              lambda x, s=session: s.run(None, {'input': x.numpy()}), args.det_batch_size,
                              stats['params'], stats['flops']))
        log(f'  built {name}')
    for c in cases:  # every detector against RetinaNet-R50 measured the same way
        c.reference = f'detector|RetinaNet-R50|{c.variant}'
    return [cases]


# --------------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 1) -> str:
    return '-' if value != value else f'{value:.{digits}f}'  # NaN -> '-'


def ratio_columns(cases: List[Case]) -> Dict[str, Tuple[float, float]]:
    """(latency / reference latency, throughput / reference throughput) per case."""
    by_key = {c.key: c for c in cases}
    out = {}
    for c in cases:
        ref = by_key.get(c.reference)
        if ref is None:
            out[c.key] = (float('nan'), float('nan'))
        else:
            out[c.key] = (c.latency_ms / ref.latency_ms, c.throughput / ref.throughput)
    return out


def markdown_table(cases: List[Case]) -> str:
    ratios = ratio_columns(cases)
    header = ['model', 'variant', 'input', 'params (M)', 'GFLOPs', 'latency bs=1 (ms)',
              'throughput img/s [bs]', 'reference', 'latency ÷ ref', 'throughput ÷ ref',
              f'{MEMORY_HEADER}, bs=1', 'same, bs=N']
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for c in cases:
        lat_r, thr_r = ratios[c.key]
        lines.append('| ' + ' | '.join([
            c.model, c.variant, f'{c.size[0]}×{c.size[1]}', fmt(c.params / 1e6, 2), fmt(c.flops / 1e9, 3),
            fmt(c.latency_ms, 2), f'{fmt(c.throughput)} [{c.batch}]' if c.batch else '-',
            ', '.join((c.reference or '||').split('|')[1:]), fmt(lat_r, 2), fmt(thr_r, 2), fmt(c.mem_bs1),
            fmt(c.mem_bsn)]) + ' |')
    return '\n'.join(lines)


def write_csv(cases: List[Case], path: str, meta: Dict) -> None:
    ratios = ratio_columns(cases)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['group', 'model', 'variant', 'height', 'width', 'params', 'flops',
                         'latency_ms_bs1', 'throughput_img_s', 'throughput_batch', 'reference',
                         'latency_ratio', 'throughput_ratio', 'peak_rss_mib_bs1', 'peak_rss_mib_bsN'] +
                        sorted(meta))
        for c in cases:
            writer.writerow([c.group, c.model, c.variant, c.size[0], c.size[1], c.params, c.flops,
                             f'{c.latency_ms:.4f}', f'{c.throughput:.3f}', c.batch, c.reference or '',
                             f'{ratios[c.key][0]:.4f}', f'{ratios[c.key][1]:.4f}', f'{c.mem_bs1:.1f}',
                             f'{c.mem_bsn:.1f}'] + [meta[k] for k in sorted(meta)])


def plot(cases: List[Case], path: str, title: str) -> None:
    """Latency against FLOPs (top row) and parameters (bottom row), one column per group."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [(g, [c for c in cases if c.group == g]) for g in ('backbone', 'backbone@det', 'detector')]
    panels = [(g, cs) for g, cs in panels if cs]
    fig, axes = plt.subplots(2, len(panels), figsize=(6.5 * len(panels), 9), squeeze=False)
    for col, (group, cs) in enumerate(panels):
        for row, (attr, scale, label) in enumerate((('flops', 1e9, 'GFLOPs (multiply-adds)'),
                                                    ('params', 1e6, 'params (M)'))):
            ax = axes[row][col]
            variants = list(dict.fromkeys(c.variant for c in cs))
            for variant in variants:
                pts = [c for c in cs if c.variant == variant and c.latency_ms == c.latency_ms]
                xs = [getattr(c, attr) / scale for c in pts]
                ax.plot(xs, [c.latency_ms for c in pts], 'o' if group == 'detector' else 'o-',
                        label=variant)
                if variant != variants[0]:
                    continue
                for x, c in zip(xs, pts):
                    short = c.model.replace('RetinaNet-', '').replace('EfficientViT-', '')
                    ax.annotate(short, (x, c.latency_ms), fontsize=7, xytext=(3, 3),
                                textcoords='offset points')
            ax.set_title(f'{group} @ {cs[0].size[0]}×{cs[0].size[1]}, bs=1')
            ax.set_xlabel(label)
            ax.set_ylabel('latency (ms, median)')
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--groups', nargs='+', default=['backbone', 'detector', 'onnx'],
                        choices=['backbone', 'detector', 'onnx'])
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
    parser.add_argument('--min-run-time', type=float, default=0.3, help='seconds per timed run (>=1 pass)')
    parser.add_argument('--threads', type=int, default=2, help='torch and onnxruntime intra-op threads')
    parser.add_argument('--channels-last', action='store_true', help='also time deployed + channels_last')
    parser.add_argument('--compile', action='store_true', help='also time deployed + torch.compile')
    parser.add_argument('--unfused', action='store_true', help='also time the detectors unfused')
    parser.add_argument('--nms-detectors', nargs='*', default=['evit-m4', 'r50'], choices=list(DETECTORS),
                        help='detectors that also get a row with NMS (predict); none: no NMS rows')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default='work_dirs/benchmark/benchmark.csv',
                        help='CSV path; the markdown table goes next to it (.md)')
    parser.add_argument('--plot', help='PNG path for latency vs FLOPs (e.g. docs/speed.png)')
    parser.add_argument('--memory-worker', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> List[Case]:
    args = parse_args(argv)
    if args.memory_worker:
        memory_worker(args.memory_worker)
        return []
    torch.set_num_threads(args.threads)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:7.1f}s] {msg}', file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmpdir:
        comparisons = []
        log('building models')
        if 'backbone' in args.groups:
            comparisons += backbone_cases(args, log)
        if 'onnx' in args.groups:
            comparisons += onnx_backbone_cases(args, tmpdir, log)
        if 'detector' in args.groups:
            comparisons += detector_cases(args, tmpdir, log)
        cases = [c for group in comparisons for c in group]
        for c in cases:
            c.key = f'{c.group}|{c.model}|{c.variant}'
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
            if not args.no_memory:
                for c in group:
                    if c.spec.get('compile'):
                        continue  # a fresh process would measure the compiler, not inference
                    c.mem_bs1 = measure_memory(c.spec, c.size, 1, args.threads)
                    if batch:
                        c.mem_bsn = measure_memory(c.spec, c.size, batch, args.threads)
                log(f'    memory measured')

    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    meta = dict(torch=torch.__version__, threads=args.threads, repeats=args.repeats,
                cpu=platform.processor() or platform.machine(), loadavg_at_end=load,
                date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    table = markdown_table(cases)
    info = (f'torch {meta["torch"]}, {args.threads} threads, median of {args.repeats} runs, '
            f'load average at end {load}, {meta["date"]}')
    print(table)
    print(f'\n{info}')
    write_csv(cases, args.out, meta)
    with open(os.path.splitext(args.out)[0] + '.md', 'w') as f:
        f.write(table + f'\n\n{info}\n')
    log(f'wrote {args.out}')
    if args.plot:
        plot(cases, args.plot, info)
        log(f'wrote {args.plot}')
    return cases


if __name__ == '__main__':
    main()
