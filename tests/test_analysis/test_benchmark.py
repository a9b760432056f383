"""The benchmark run without real models: timing and memory filled in per comparison, and a group
added to the registry as one entry runs through ``benchmark.py`` to its CSV, table and plot; the
device protocol (``benchmark.py --device``), run on the CPU so that it cannot rot where no GPU is lent."""
import csv
import math

import pytest
import torch

from mmdet_efficientvit.analysis.benchmark import protocol
from mmdet_efficientvit.analysis.benchmark.cases import (REALTIME_FAMILY, Case, case_key,
                                                        resolve_detector)
from mmdet_efficientvit.analysis.benchmark.measure import measure_comparisons, process_memory
from mmdet_efficientvit.model_zoo import ARCHS
from mmdet_efficientvit.resources import load_config

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


@pytest.mark.slow
def test_benchmark_device_protocol_on_cpu(tmp_path):
    benchmark = load_tool('analysis_tools/benchmark.py')
    out = tmp_path / 'dev.csv'
    cases = benchmark.main([
        '--device', 'cpu', '--archs', 'm0', '--device-batch-sizes', '2', '3', '--detectors', 'evit-m0',
        'r50', '--det-size', '64x96', '--det-batch-size', '2', '--channels-last', '--repeats', '1',
        '--warmup', '1', '--min-run-time', '0.01', '--threads', '1', '--out', str(out)])
    backbone = [c for c in cases if c.group.startswith('backbone@cpu')]
    variants = ['timm', 'ours unfused', 'ours deployed', 'ours deployed + channels_last']
    assert [c.variant for c in backbone] == [f'{v}, {p}' for _ in (2, 3) for p in ('fp32', 'amp')
                                             for v in variants]
    assert [c.batch for c in backbone] == [2] * 8 + [3] * 8
    assert {c.group for c in backbone} == {'backbone@cpu bs2', 'backbone@cpu bs3'}
    for c in backbone:  # each against timm in the same precision and batch
        assert c.reference == f'{c.group}|EfficientViT-M0|timm, {c.variant.split(", ")[1]}'
    detectors = [c for c in cases if c.group == 'detector@cpu']
    assert {c.model for c in detectors} == {'RetinaNet-EfficientViT-M0', 'RetinaNet-R50'}
    assert {c.variant for c in detectors} == {
        f'deployed, no NMS, {p}{s}' for p in ('fp32', 'amp') for s in ('', ' + channels_last')}
    assert all(c.reference.startswith('detector@cpu|RetinaNet-R50|') for c in detectors)
    for c in cases:
        assert c.latency_ms > 0 and c.throughput > 0 and c.params > 0 and c.flops > 0
        assert c.mem_bs1 != c.mem_bs1  # no /proc RSS in the device protocol (CUDA: CUDA memory)
    text = out.read_text()
    assert text.count('\n') == len(cases) + 1 and 'peak_cuda_mib_bs1' in text
    assert 'torch.bfloat16' in (tmp_path / 'dev.md').read_text()  # the CPU's AMP dtype, stated


def test_benchmark_device_arguments():
    benchmark = load_tool('analysis_tools/benchmark.py')
    args = benchmark.parse_args(['--device', 'cpu'])
    assert args.groups == ['backbone', 'detector'] and args.device_batch_sizes == [256, 2048]
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--device', 'cpu', '--groups', 'onnx'])


def test_realtime_keys_name_the_shipped_configs():
    """``rtmdet-evit-mX`` and ``rtmdet-evit-mX-dw`` resolve to the shipped config of that arch with
    plain or depthwise neck and head convs, and ``--realtime-detectors`` takes them."""
    assert [key for key, _, _ in REALTIME_FAMILY] == [
        f'rtmdet-evit-{a}{dw}' for a in ARCHS for dw in ('', '-dw')]
    for key, config, name in REALTIME_FAMILY:
        assert resolve_detector(key) == (config, name)
        model = load_config(config).model
        depthwise = key.endswith('-dw')
        assert model.backbone.arch == key.split('-')[2] and name.endswith('-DW') == depthwise
        assert model.neck.get('use_depthwise', False) == model.bbox_head.get('use_depthwise', False) \
            == depthwise
    args = load_tool('analysis_tools/benchmark.py').parse_args(
        ['--groups', 'realtime', '--realtime-detectors', 'rtmdet-evit-m4-dw', 'rtmdet-evit-m0'])
    assert args.realtime_detectors == ['rtmdet-evit-m4-dw', 'rtmdet-evit-m0']


@pytest.mark.slow
def test_benchmark_end2end_group(tmp_path):
    """``benchmark.py --groups end2end``: eager predict, fp32 and INT8 end-to-end rows per model,
    fp32 against R50's eager predict (absent here: NaN), INT8 against the same model's fp32."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    cases = benchmark.main([
        '--groups', 'end2end', '--e2e-detectors', 'evit-m0', '--det-size', '96x128',
        '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01', '--threads', '1',
        '--no-memory', '--out', str(tmp_path / 'e2e.csv')])
    assert [c.variant for c in cases] == ['eager predict (deployed, NMS)',
                                          'onnxruntime end2end fp32', 'onnxruntime end2end INT8']
    assert all(c.latency_ms > 0 and c.size == (96, 128) for c in cases)
    assert cases[2].reference == cases[1].key
    assert 'RetinaNet-R50' in cases[0].reference and 'RetinaNet-R50' in cases[1].reference


@pytest.mark.slow
def test_benchmark_realtime_group(tmp_path):
    """``benchmark.py --groups realtime`` with config files (as docs/realtime.md times the demo
    ablations): every row against the reference detector's row of the same variant, which is added
    when not listed; an unknown detector is refused by argparse in one line."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    ours, tiny = ('configs/demo/ablations/rtmdet_evit_fpn_demo_shapes.py',
                  'configs/demo/rtmdet_tiny_demo_shapes.py')
    cases = benchmark.main([
        '--groups', 'realtime', '--realtime-detectors', ours, '--realtime-reference', tiny,
        '--realtime-size', '96x128', '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01',
        '--threads', '1', '--no-memory', '--out', str(tmp_path / 'realtime.csv')])
    assert [c.model for c in cases] == (['rtmdet_evit_fpn_demo_shapes'] * 3
                                        + ['rtmdet_tiny_demo_shapes'] * 3)
    by_key = {c.key: c for c in cases}
    for case in cases:
        assert case.latency_ms > 0 and case.size == (96, 128)
        reference = by_key[case.reference]
        assert reference.model == 'rtmdet_tiny_demo_shapes' and reference.variant == case.variant
    assert cases[0].flops < cases[3].flops  # the EfficientViT detector is the lighter one
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--groups', 'realtime', '--realtime-detectors', 'rtmdet-evit-m9'])
