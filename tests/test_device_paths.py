"""The GPU code paths, run on the CPU so that they cannot rot where no GPU is lent: the benchmark's
device protocol (``benchmark.py --device``) and the GPU check script, the latter in a Python where
mmcv's compiled ops cannot be imported (as on a lent GPU machine, which has no mmcv build)."""
import json
import textwrap

import pytest

from _data import REPO, load_tool, run_tool

BLOCK_MMCV_OPS = textwrap.dedent('''\
    """Test helper: make mmcv's compiled ops unimportable in this interpreter."""
    import importlib.abc
    import sys


    class _NoCompiledOps(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == 'mmcv._ext':
                raise ImportError('mmcv._ext blocked by the test (no compiled ops)')
            return None


    sys.meta_path.insert(0, _NoCompiledOps())
    ''')


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


@pytest.mark.slow
def test_gpu_check_runs_without_mmcv_compiled_ops(tmp_path):
    (tmp_path / 'sitecustomize.py').write_text(BLOCK_MMCV_OPS)
    env = dict(PYTHONPATH=f'{tmp_path}:{REPO}')
    guard = run_tool(['analysis_tools/benchmark.py', '--help'], **env)
    assert guard.returncode != 0 and 'without its compiled ops' in guard.stderr  # really blocked
    out = tmp_path / 'out'
    proc = run_tool(['analysis_tools/gpu_check.py', '--device', 'cpu', '--parity-archs', 'm0',
                     '--det-size', '64x96', '--train-arch', 'm0', '--train-size', '64x96', '--archs',
                     'm0', '--batch-sizes', '2', '--repeats', '1', '--min-run-time', '0.01', '--out',
                     str(out)], timeout=600, **env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'mmcv compiled ops: absent (stand-in)' in proc.stdout and 'ALL CHECKS PASS' in proc.stdout
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['ok'] and report['mmcv_ops_stand_in']
    assert {(r['variant'], r['size'], r['dtype']) for r in report['parity']} == {
        (v, s, d) for v in ('unfused', 'deployed') for s in ('224x224', '64x96')
        for d in ('float32', 'bfloat16')}
    assert all(r['rel_err'] <= r['tolerance'] for r in report['parity'])
    (step, ) = report['train_step']
    assert step['dtype'] == 'bfloat16' and step['finite'] and step['nonzero_grads'] == step['params']
    assert [r['variant'] for r in report['throughput']] == [
        'timm, amp', 'ours unfused, amp', 'ours deployed, amp', 'ours deployed + channels_last, amp']
    assert (out / 'throughput.md').read_text().startswith('| model |')
