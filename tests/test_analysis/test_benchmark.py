"""The benchmark run without real models: timing and memory filled in per comparison, and a group
added to the registry as one entry runs through ``benchmark.py`` to its CSV, table and plot."""
import csv
import math

import pytest
import torch

from mmdet_efficientvit.analysis.benchmark import protocol
from mmdet_efficientvit.analysis.benchmark.cases import Case, case_key
from mmdet_efficientvit.analysis.benchmark.measure import measure_comparisons, process_memory

from _data import load_tool


def toy_cases(group: str, batch: int, shapes: list) -> list:
    """Two cases, the second twice the work of the first, against the first; each records the
    input shapes it ran on."""
    def runner(repeat: int):
        def run(x: torch.Tensor):
            shapes.append((repeat, tuple(x.shape)))
            for _ in range(repeat):
                x = torch.tanh(x @ torch.ones(x.shape[-1], x.shape[-1]))
            return x
        return run

    return [Case(group, f'toy-{n}', 'eager', (8, 64), dict(kind='toy'), runner(n), batch,
                 params=n, flops=1000 * n, reference=case_key(group, 'toy-1', 'eager'))
            for n in (1, 2)]


def test_measure_comparisons_fills_every_case():
    shapes, calls, logged = [], [], []
    latency_only, batched = toy_cases('a', 0, shapes), toy_cases('b', 3, shapes)

    def memory(case, batch):
        calls.append((case.key, batch))
        return 10.0 * batch

    measure_comparisons([latency_only, batched], repeats=2, warmup=1, min_run_time=0.001,
                        log=logged.append, memory=memory)
    for c in latency_only + batched:
        assert c.latency_ms > 0 and c.mem_bs1 == 10.0
    assert all(math.isnan(c.throughput) and math.isnan(c.mem_bsn) for c in latency_only)
    assert all(c.throughput > 0 and c.mem_bsn == 30.0 for c in batched)
    assert {s for _, s in shapes} == {(1, 3, 8, 64), (3, 3, 8, 64)}
    assert calls == [(c.key, 1) for c in latency_only] + [
        (c.key, b) for c in batched for b in (1, 3)]
    assert logged[0] == '[1/2] timing a: toy-1, toy-2' and logged.count('    memory measured') == 2


def test_process_memory_skips_compiled_cases():
    case = toy_cases('a', 0, [])[0]
    case.spec = dict(kind='evit', compile=True)
    assert math.isnan(process_memory(case, 1, threads=1))  # no subprocess: the compiler's memory


def test_a_registered_group_runs_through_the_tool(tmp_path, monkeypatch, capsys):
    shapes = []
    monkeypatch.setitem(protocol.GROUPS, 'toy',
                        lambda options, ctx: [toy_cases('toy', options.batch_size, shapes)])
    benchmark = load_tool('analysis_tools/benchmark.py')
    out, png = tmp_path / 'toy.csv', tmp_path / 'toy.png'
    cases = benchmark.main(['--groups', 'toy', '--batch-size', '2', '--repeats', '1', '--warmup',
                            '1', '--min-run-time', '0.001', '--threads', '1', '--no-memory',
                            '--out', str(out), '--plot', str(png)])
    assert [c.model for c in cases] == ['toy-1', 'toy-2']
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    assert [(r['group'], r['model'], r['throughput_batch']) for r in rows] == [
        ('toy', 'toy-1', '2'), ('toy', 'toy-2', '2')]
    assert float(rows[0]['latency_ratio']) == 1.0 and float(rows[1]['latency_ratio']) > 0
    assert rows[0]['threads'] == '1' and rows[0]['repeats'] == '1'
    table = (tmp_path / 'toy.md').read_text()
    assert table.startswith('| model |') and '1 threads, median of 1 runs' in table
    assert table in capsys.readouterr().out  # printed as written
    assert png.stat().st_size > 5_000
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--groups', 'nonesuch'])
