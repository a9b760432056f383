"""Time the same cases on two checkouts of this repository, interleaved: a change's before and after.

Each checkout gets one worker process (:mod:`.checkout_worker`, run by path with the checkout's root
first on ``PYTHONPATH``), which builds every case from the same spec with that checkout's package. After
warm-up the workers are asked in turn for one timed run of each case, the order of the two checkouts
swapping from repeat to repeat, so that load from other processes hits both alike. Latencies are
medians over the repeats; the ratio is the median of the repeats' after / before ratios (each pair
timed back to back), with its quartiles, and the ratio of the fastest runs (other processes only
ever add time, so on a shared machine the minimum is the least disturbed figure).
"""
import csv
import json
import os
import statistics
import subprocess
import sys
from typing import Callable, Dict, List, Tuple

from ...errors import SetupError
from . import checkout_worker

CHECKOUTS = ('before', 'after')


def check_checkout(path: str) -> None:
    """Raise SetupError (one line, with the fix) unless ``path`` is the root of a checkout."""
    if not os.path.isdir(os.path.join(path, 'mmdet_efficientvit')):
        raise SetupError(f'{path} is not a checkout of this repository (no mmdet_efficientvit/ in '
                         'it): pass the root of a clone or of a `git worktree add` directory')


class Worker:
    """One checkout's worker process: built cases, timed on request."""

    def __init__(self, checkout: str, cases: List[Tuple[Dict, Tuple[int, int]]], threads: int,
                 seed: int):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.abspath(checkout)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
        payload = dict(cases=cases, threads=threads, seed=seed)
        self.checkout = checkout
        self.proc = subprocess.Popen(
            [sys.executable, checkout_worker.__file__, json.dumps(payload)], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._expect('READY')

    def _expect(self, what: str) -> str:
        line = self.proc.stdout.readline().strip()
        if not line:
            raise SetupError(f'the worker for {self.checkout} stopped before {what} (see its '
                               'error above)')
        return line

    def time(self, case: int, passes: int) -> float:
        """Seconds per pass of case ``case`` over ``passes`` passes."""
        self.proc.stdin.write(f'{case} {passes}\n')
        self.proc.stdin.flush()
        return float(self._expect('a timing'))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare_checkouts(before: str, after: str, specs: List[Tuple[str, str, Tuple[int, int], Dict]],
                      threads: int, repeats: int, warmup: int, seed: int,
                      log: Callable[[str], None]) -> List[Dict]:
    """Median seconds per pass of each ``(model, variant, size, spec)`` on both checkouts, interleaved;
    one dict per case with ``before_ms``, ``after_ms`` and ``ratio`` (after / before) with its
    quartiles ``ratio_q1``, ``ratio_q3``, and ``min_ratio`` (after / before of the fastest runs, module
    doc)."""
    for path in (before, after):
        check_checkout(path)
    cases = [(spec, list(size)) for _, _, size, spec in specs]
    log(f'building {len(cases)} cases in each checkout')
    workers = [Worker(path, cases, threads, seed) for path in (before, after)]
    samples = {(w, i): [] for w in CHECKOUTS for i in range(len(cases))}
    try:
        for i in range(len(cases)):
            for w in workers:
                w.time(i, warmup)
        for r in range(repeats):
            order = list(zip(CHECKOUTS, workers))
            for i in range(len(cases)):
                for name, w in (order if r % 2 == 0 else order[::-1]):
                    samples[name, i].append(w.time(i, 1))
            log(f'  repeat {r + 1}/{repeats} done')
    finally:
        for w in workers:
            w.close()
    rows = []
    for i, (model, variant, size, _) in enumerate(specs):
        ms = {name: statistics.median(samples[name, i]) * 1e3 for name in CHECKOUTS}
        ratios = [a / b for a, b in zip(samples['after', i], samples['before', i])]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        rows.append(dict(model=model, variant=variant, size=f'{size[0]}x{size[1]}',
                         before_ms=round(ms['before'], 1), after_ms=round(ms['after'], 1),
                         ratio=round(statistics.median(ratios), 3), ratio_q1=round(q1, 3),
                         ratio_q3=round(q3, 3),
                         min_ratio=round(min(samples['after', i]) / min(samples['before', i]), 3)))
    return rows


def write_rows(rows: List[Dict], path: str) -> str:
    """Write the rows as CSV at ``path`` and return them as a markdown table."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    header = ('| model | variant | size | before (ms) | after (ms) | after / before (quartiles) | '
              'after / before, fastest runs |')
    lines = [header, '|---|---|---|---|---|---|---|']
    lines += [f"| {r['model']} | {r['variant']} | {r['size']} | {r['before_ms']} | {r['after_ms']} | "
              f"{r['ratio']} ({r['ratio_q1']}-{r['ratio_q3']}) | {r['min_ratio']} |" for r in rows]
    return '\n'.join(lines)
