"""Timing (interleaved runs, medians) and peak memory (a fresh process per case).

Models of one comparison are timed interleaved (one run of each in turn, ``repeats`` times) so that
load from other processes hits them alike; every figure is the median over the repeats. One run is
``k`` forward passes with ``k`` chosen at warm-up so that a run lasts about ``min_run_time`` s.

Peak memory: each case runs in a fresh subprocess (``python -m ...benchmark.measure SPEC``); after the
model and the input are built, the freed heap is returned to the OS (``malloc_trim``) and the peak
resident set size is reset (``/proc/self/clear_refs``); the figure is the peak RSS (VmHWM) over the
first two forward passes minus the RSS just before them: what inference adds to the built model and
input (activations, workspaces, kernel caches, onnxruntime's arena). Same method for torch and
onnxruntime.

On CUDA a pass is timed between ``torch.cuda.synchronize`` calls (kernels are asynchronous), and peak
memory is ``torch.cuda.max_memory_allocated`` over two passes minus what was allocated before them,
measured in this process (:func:`measure_cuda_memory`); the RSS method does not apply.

:func:`measure_comparisons` fills in every case's figures.
"""
import argparse
import ctypes
import ctypes.util
import gc
import json
import re
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

from .cases import Case, build_runner


def _synchronizer(device: str) -> Callable[[], None]:
    """Wait for the device's queued kernels (CUDA); nothing on the CPU."""
    if torch.device(device).type == 'cuda':
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def time_group(cases: List[Case], batch: int, repeats: int, warmup: int, min_run_time: float,
               log: Callable, device: str = 'cpu') -> Dict[str, float]:
    """Median seconds per forward pass of each case, runs interleaved; ``batch`` images per pass,
    made on ``device``."""
    inputs = {c.key: torch.randn(batch, 3, *c.size, device=device) for c in cases}
    sync = _synchronizer(device)
    iters = {}
    with torch.inference_mode():
        for c in cases:  # warm-up, and pick the passes per run
            c.run(inputs[c.key])  # first pass outside the estimate (cudnn autotuning, compilation)
            sync()
            start = time.perf_counter()
            for _ in range(warmup):
                c.run(inputs[c.key])
            sync()
            per_pass = (time.perf_counter() - start) / max(warmup, 1)
            iters[c.key] = max(1, int(round(min_run_time / max(per_pass, 1e-6))))
        samples = {c.key: [] for c in cases}
        for r in range(repeats):
            for c in cases:
                sync()
                start = time.perf_counter()
                for _ in range(iters[c.key]):
                    c.run(inputs[c.key])
                sync()
                samples[c.key].append((time.perf_counter() - start) / iters[c.key])
            log(f'    repeat {r + 1}/{repeats} (bs={batch}) done')
    return {k: statistics.median(v) for k, v in samples.items()}


def add_timing_arguments(parser: argparse.ArgumentParser, what: str = 'model') -> None:
    """The options of :func:`time_group` (``--repeats``, ``--warmup``, ``--min-run-time``) with their
    defaults, for the tools that time with it; ``what`` names the thing timed in the help."""
    parser.add_argument('--repeats', type=int, default=5,
                        help=f'timed runs per {what} (median taken)')
    parser.add_argument('--warmup', type=int, default=2, help=f'untimed passes per {what} first')
    parser.add_argument('--min-run-time', type=float, default=0.3,
                        help='seconds per timed run (>=1 pass)')


# Peak memory that inference adds to one case at one batch size, in MiB.
MemoryMeasure = Callable[[Case, int], float]


def measure_comparisons(comparisons: List[List[Case]], repeats: int, warmup: int,
                        min_run_time: float, log: Callable, device: str = 'cpu',
                        memory: Optional[MemoryMeasure] = None) -> None:
    """Latency (bs=1), throughput (each comparison's batch, where it has one) and, with ``memory``
    (:func:`process_memory`, :func:`measure_cuda_memory`), peak memory of every case, in place;
    each comparison timed interleaved (:func:`time_group`)."""
    for i, group in enumerate(comparisons, 1):
        log(f'[{i}/{len(comparisons)}] timing {group[0].group}: '
            f'{", ".join(dict.fromkeys(c.model for c in group))}')
        latency = time_group(group, 1, repeats, warmup, min_run_time, log, device)
        for c in group:
            c.latency_ms = latency[c.key] * 1e3
        batch = group[0].batch
        if batch:
            per_pass = time_group(group, batch, repeats, warmup, min_run_time, log, device)
            for c in group:
                c.throughput = batch / per_pass[c.key]
        if memory is None:
            continue
        for c in group:
            c.mem_bs1 = memory(c, 1)
            if batch:
                c.mem_bsn = memory(c, batch)
        log('    memory measured')


def process_memory(case: Case, batch: int, threads: int) -> float:
    """:func:`measure_memory` of a case; NaN for a ``torch.compile`` case, where a fresh process
    would measure the compiler, not inference."""
    if case.spec.get('compile'):
        return float('nan')
    return measure_memory(case.spec, case.size, batch, threads)


def measure_memory(spec: Dict, size: Tuple[int, int], batch: int, threads: int) -> float:
    """Peak RSS that inference adds, in MiB, measured in a fresh subprocess (see module doc)."""
    payload = json.dumps(dict(spec=spec, size=size, batch=batch, threads=threads))
    proc = subprocess.run([sys.executable, '-m', __name__, payload], capture_output=True, text=True)
    match = re.search(r'^PEAK_MIB (\S+)$', proc.stdout, re.M)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f'memory worker failed for {spec}:\n{proc.stderr[-3000:]}')
    return float(match.group(1))


def measure_cuda_memory(case: Case, batch: int, device: str) -> float:
    """Peak CUDA memory that inference adds, in MiB (see module doc), measured in this process."""
    x = torch.randn(batch, 3, *case.size, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        for _ in range(2):
            case.run(x)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def _status(key: str) -> int:
    with open('/proc/self/status') as f:
        return int(re.search(rf'^{key}:\s+(\d+) kB', f.read(), re.M).group(1))


def memory_worker(payload: str) -> None:
    """Subprocess side of :func:`measure_memory`: build, trim the heap, reset the high-water mark, run."""
    args = json.loads(payload)
    torch.set_num_threads(args['threads'])
    run = build_runner(args['spec'], threads=args['threads'])
    x = torch.randn(args['batch'], 3, *args['size'])
    # Hand the heap that building freed back to the OS, or inference would reuse it unseen.
    gc.collect()
    ctypes.CDLL(ctypes.util.find_library('c')).malloc_trim(0)
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current RSS
    before = _status('VmRSS')
    with torch.inference_mode():
        for _ in range(2):
            run(x)
    print(f"PEAK_MIB {(_status('VmHWM') - before) / 1024:.1f}")


if __name__ == '__main__':
    memory_worker(sys.argv[1])
