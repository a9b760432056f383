"""tools/analysis_tools/gpu_check.py, run on the CPU so that it cannot rot where no GPU is lent, in a Python
where mmcv's compiled ops cannot be imported (as on a lent GPU machine, which has no mmcv build)."""
import json
import textwrap

import pytest

from _data import REPO, run_tool

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
