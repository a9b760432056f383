"""A benchmark run from the options to the report: the groups each protocol can time and the run.

The CPU protocol (:func:`run_benchmark`) builds the comparisons of every selected group of
:data:`GROUPS`, times them (:func:`.measure.measure_comparisons`, peak RSS in fresh processes) and
writes the report; with ``device`` set the device protocol (:func:`run_on_device`) does the same for
:data:`DEVICE_GROUPS` on that device (CUDA memory in-process). A group is one entry of its registry:
a name and a function from the options to its comparisons. ``options`` is the namespace of
``tools/analysis_tools/benchmark.py``, whose help documents every option and group.
"""
import platform
import tempfile
from argparse import Namespace
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Optional

import torch

from .cases import (REALTIME_DETECTORS, Case, amp_dtype, backbone_cases, detector_cases,
                    device_backbone_cases, device_detector_cases, end2end_cases,
                    onnx_backbone_cases, openvino_precisions)
from .measure import measure_comparisons, measure_cuda_memory, process_memory
from .report import (CUDA_MEMORY_HEADER, MEMORY_HEADER, load_average, utc_date,
                     write_outputs)


@dataclass
class Context:
    """What a group builds with besides the options."""
    log: Callable
    tmpdir: Optional[str] = None                     # where exported graphs go (CPU protocol)
    notes: List[str] = field(default_factory=list)  # what the report leaves out, and why


# A group: options and context -> its comparisons (each a list of cases timed interleaved).
Group = Callable[[Namespace, Context], List[List[Case]]]


def _end2end(o: Namespace, ctx: Context) -> List[List[Case]]:
    """RetinaNets at ``det_size``, real-time keys at ``realtime_size`` (group ``end2end@realtime``)."""
    precisions, note = openvino_precisions() if o.openvino_detectors else ((), None)
    ctx.notes += [note] if note else []
    realtime = [d for d in o.e2e_detectors if d in REALTIME_DETECTORS]
    comparisons = []
    for group, size, detectors in (
            ('end2end', o.det_size, [d for d in o.e2e_detectors if d not in realtime]),
            ('end2end@realtime', o.realtime_size, realtime)):
        if detectors:
            comparisons += end2end_cases(detectors, size, o.seed, o.threads, ctx.tmpdir, ctx.log,
                                         group=group, openvino_detectors=o.openvino_detectors,
                                         openvino_precisions=precisions)
    return comparisons


def _realtime(o: Namespace, ctx: Context) -> List[List[Case]]:
    """The real-time detectors and the reference (added when not listed), each against it."""
    detectors = list(dict.fromkeys(o.realtime_detectors + [o.realtime_reference]))
    return end2end_cases(detectors, o.realtime_size, o.seed, o.threads, ctx.tmpdir, ctx.log,
                         group='realtime', reference=o.realtime_reference)


# --groups of the CPU protocol, built (and reported) in this order.
GROUPS: Dict[str, Group] = {
    'backbone': lambda o, ctx: backbone_cases(o.archs, o.backbone_size, o.batch_size, o.seed,
                                              o.channels_last, o.compile),
    'onnx': lambda o, ctx: onnx_backbone_cases(o.archs, o.det_size, o.det_batch_size, o.seed,
                                               o.threads, ctx.tmpdir, ctx.log),
    'detector': lambda o, ctx: detector_cases(o.detectors, o.det_size, o.det_batch_size, o.seed,
                                              o.threads, ctx.tmpdir, ctx.log, o.unfused,
                                              tuple(o.nms_detectors), 'onnx' in o.groups),
    'end2end': _end2end,
    'realtime': _realtime,
}
DEFAULT_GROUPS = ('backbone', 'detector', 'onnx')  # end2end and realtime export: minutes
# --groups of the device protocol.
DEVICE_GROUPS: Dict[str, Group] = {
    'backbone': lambda o, ctx: device_backbone_cases(
        o.archs, o.backbone_size, o.device_batch_sizes, o.seed, o.device, tuple(o.precisions),
        o.channels_last, o.compile),
    'detector': lambda o, ctx: device_detector_cases(
        o.detectors, o.det_size, o.det_batch_size, o.seed, o.device, ctx.log,
        tuple(o.precisions), o.channels_last, o.compile),
}


def build_groups(groups: Dict[str, Group], options: Namespace, ctx: Context) -> List[List[Case]]:
    """The comparisons of the groups in ``options.groups``, in the registry's order."""
    return [comparison for name, build in groups.items() if name in options.groups
            for comparison in build(options, ctx)]


def run_benchmark(options: Namespace, log: Callable) -> List[Case]:
    """Build, time and report the selected groups (the device protocol when ``options.device`` is
    set); every case with its figures."""
    torch.set_num_threads(options.threads)
    if options.device is not None:
        return run_on_device(options, log)
    with tempfile.TemporaryDirectory() as tmpdir:
        ctx = Context(log, tmpdir)
        log('building models')
        comparisons = build_groups(GROUPS, options, ctx)
        memory = None if options.no_memory else partial(process_memory, threads=options.threads)
        measure_comparisons(comparisons, options.repeats, options.warmup, options.min_run_time, log,
                            memory=memory)
    cases = [c for group in comparisons for c in group]
    meta = dict(torch=torch.__version__, threads=options.threads, repeats=options.repeats,
                cpu=platform.processor() or platform.machine(), loadavg_at_end=load_average(),
                date=utc_date())
    info = (f'torch {meta["torch"]}, {options.threads} threads, median of {options.repeats} runs, '
            f'load average at end {meta["loadavg_at_end"]}, {meta["date"]}')
    write_outputs(cases, options.out, options.plot, meta, '\n'.join([info] + ctx.notes), log)
    return cases


def run_on_device(options: Namespace, log: Callable) -> List[Case]:
    """The device protocol: latency (bs=1), throughput and, on CUDA, peak CUDA memory of the
    selected :data:`DEVICE_GROUPS` on ``options.device``, reported."""
    device = options.device
    cuda = torch.device(device).type == 'cuda'
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cudnn pick its fastest kernels
    log(f'building models for {device}')
    comparisons = build_groups(DEVICE_GROUPS, options, Context(log))
    memory = partial(measure_cuda_memory, device=device) if cuda and not options.no_memory else None
    measure_comparisons(comparisons, options.repeats, options.warmup, options.min_run_time, log,
                        device, memory)
    cases = [c for group in comparisons for c in group]
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine()
    meta = dict(torch=torch.__version__, device=name, amp_dtype=str(amp_dtype(device)),
                repeats=options.repeats, cudnn_benchmark=cuda, date=utc_date())
    info = (f'torch {meta["torch"]} on {name}, amp = autocast {meta["amp_dtype"]}, median of '
            f'{options.repeats} runs, {meta["date"]}')
    write_outputs(cases, options.out, options.plot, meta, info, log,
                  CUDA_MEMORY_HEADER if cuda else MEMORY_HEADER, 'peak_cuda_mib')
    return cases
