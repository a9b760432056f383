"""Before/after timing of two checkouts (analysis/benchmark/checkouts.py and its tool)."""
import os

import pytest

from _data import REPO, error_line, load_tool
from mmdet_efficientvit.analysis.benchmark.cases import (PREDICT_DETECTORS, PREDICT_VARIANTS,
                                                         predict_specs)
from mmdet_efficientvit.analysis.benchmark.checkouts import compare_checkouts, write_rows


def test_predict_specs_cover_both_families_unfused_and_deployed():
    specs = predict_specs(PREDICT_DETECTORS)
    assert [(m, v, s) for m, v, s, _ in specs] == [
        ('RTMDet-EfficientViT-M0', 'unfused predict', (640, 640)),
        ('RTMDet-EfficientViT-M0', 'deployed predict', (640, 640)),
        ('RetinaNet-EfficientViT-M4', 'unfused predict', (800, 1216)),
        ('RetinaNet-EfficientViT-M4', 'deployed predict', (800, 1216))]
    for _, variant, _, spec in specs:
        assert spec['deploy'] is PREDICT_VARIANTS[variant]
        assert spec['nms'] and spec['scores_below_threshold']
        config = spec['config'].replace('mmdet_efficientvit::', 'configs/')
        assert os.path.isfile(REPO / config), config


def test_a_directory_that_is_no_checkout_is_one_line(capsys, tmp_path):
    tool = load_tool('analysis_tools/benchmark_checkouts.py')
    err = error_line(capsys, tool.main, ['--before', str(tmp_path), '--after', str(REPO)])
    assert str(tmp_path) in err and 'git worktree add' in err


@pytest.mark.slow
def test_same_checkout_twice_gives_a_ratio_near_one(tmp_path):
    """Both workers build and time the case; the same code on both sides gives a paired ratio near 1."""
    specs = [('EfficientViT-M0', 'deployed', (64, 96),
              dict(kind='evit', arch='m0', window_size=[7, 7, 7], deploy=True))]
    rows = compare_checkouts(str(REPO), str(REPO), specs, threads=1, repeats=5, warmup=2, seed=0,
                             log=lambda msg: None)
    (row, ) = rows
    assert row['before_ms'] > 0 and row['after_ms'] > 0
    assert row['ratio_q1'] <= row['ratio'] <= row['ratio_q3']
    assert 0.5 < row['min_ratio'] < 2
    assert 0.5 < row['ratio'] < 2
    table = write_rows(rows, str(tmp_path / 'out.csv'))
    assert (tmp_path / 'out.csv').read_text().splitlines()[0] == ','.join(row)
    assert '| EfficientViT-M0 | deployed | 64x96 |' in table
