"""FLOPs/params of EfficientViT against the paper, and the analysis tools end to end.

References are independent of our code: the paper's FLOPs and parameter counts (REFERENCE.md) and
the closed-form multiply-add count of window attention.
"""
import math

import pytest
import torch

from mmdet_efficientvit.analysis.benchmark.measure import measure_memory
from mmdet_efficientvit.analysis.flops import classifier_complexity, complexity
from mmdet_efficientvit.model_zoo import PAPER_IMAGENET, PAPER_MFLOPS
from mmdet_efficientvit.models.builders import build_backbone
from mmdet_efficientvit.tools_support import parse_size

from _data import CONFIGS, load_tool


@pytest.mark.parametrize('arch', sorted(PAPER_MFLOPS))
def test_classifier_flops_and_params_match_paper(arch):
    stats = classifier_complexity(arch, deploy=True)
    paper = PAPER_MFLOPS[arch] * 1e6
    assert abs(stats['flops'] / paper - 1) < 0.03, (arch, stats['flops'], paper)
    assert stats['params'] == PAPER_IMAGENET[arch]['params']


def attention_matmul_flops(backbone, size):
    """Closed form: per block and window, q^T k costs N*N*key_dim per head, v attn^T N*N*val_dim."""
    h, w = math.ceil(size[0] / 16), math.ceil(size[1] / 16)
    total = 0
    for i, dim in enumerate(backbone.embed_dims):
        if i > 0:
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        r = backbone.window_size[i]
        if h <= r and w <= r:
            windows, tokens = 1, h * w
        else:
            windows, tokens = math.ceil(h / r) * math.ceil(w / r), r * r
        heads = backbone.arch_settings['num_heads'][i]
        key_dim = backbone.arch_settings['key_dims'][i]
        per_block = windows * tokens * tokens * (heads * key_dim + dim)  # sum of val_dim = dim
        total += per_block * backbone.arch_settings['depths'][i]
    return total


@pytest.mark.parametrize('size', [(224, 224), (128, 480)])
def test_attention_matmuls_are_counted(size):
    """Both attention matmuls (incl. the padded windows at detection-like sizes) are in the FLOPs."""
    backbone = build_backbone('m0', window_size=(7, 7, 4) if size == (224, 224) else (7, 7, 7))
    stats = complexity(backbone, torch.zeros(1, 3, *size))
    assert stats['matmul_flops'] == attention_matmul_flops(backbone, size)


def test_parse_size():
    assert parse_size('800x1216') == (800, 1216)
    assert parse_size(224) == (224, 224)
    with pytest.raises(ValueError, match='HxW'):
        parse_size('800*1216')


def test_get_flops_tool(capsys):
    get_flops = load_tool('analysis_tools/get_flops.py')
    rows = get_flops.main(['m0', '--size', '128x480', '--deploy', '--show-table'])
    assert rows[0]['flops'] > 0 and rows[0]['matmul'] > 0
    config = str(CONFIGS / 'retinanet_evit_m0_fpn_1x_coco.py')
    det = get_flops.main([config, '--size', '100x150'])
    assert det['size'] == (128, 160)  # padded to the data preprocessor's divisor (32)
    assert det['flops'] > det['backbone_flops'] > 0
    out = capsys.readouterr().out
    assert '| model ' in out and 'patch_embed' in out  # mmengine's per-module table
    assert 'padded to 128×160' in out
    two_stage = get_flops.main([str(CONFIGS / 'mask_rcnn_evit_m4_fpn_1x_coco.py'), '--size', '128x160'])
    assert two_stage['flops'] > two_stage['backbone_flops'] > 0  # RPN + RoI heads in tensor mode
    with pytest.raises(SystemExit, match='neither a backbone arch'):
        get_flops.main(['m9'])


@pytest.mark.slow
def test_benchmark_tool_quick_run(tmp_path):
    """One arch, one repeat: timing, ratios, CSV/markdown/PNG; then the
    fresh-process memory measurement once."""
    benchmark = load_tool('analysis_tools/benchmark.py')
    out = tmp_path / 'bench.csv'
    png = tmp_path / 'speed.png'
    cases = benchmark.main([
        '--groups', 'backbone', '--archs', 'm0', '--backbone-size', '224', '--batch-size', '2',
        '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01', '--threads', '1', '--no-memory',
        '--out', str(out), '--plot', str(png)])
    assert [c.variant for c in cases] == ['timm (unfused)', 'ours unfused', 'ours deployed']
    for c in cases:
        assert c.latency_ms > 0 and c.throughput > 0
    timm_flops, unfused_flops, deployed_flops = (c.flops for c in cases)
    assert deployed_flops <= unfused_flops <= timm_flops  # BatchNorm FLOPs only where BN runs
    assert timm_flops - deployed_flops < 0.03 * timm_flops
    text = out.read_text()
    assert text.count('\n') == 4 and 'throughput_ratio' in text
    assert (tmp_path / 'bench.md').read_text().startswith('| model |')
    assert png.stat().st_size > 10_000
    bs1 = measure_memory(cases[2].spec, (224, 224), 1, threads=1)
    bs8 = measure_memory(cases[2].spec, (224, 224), 8, threads=1)
    assert 1 < bs1 < bs8 < 500  # M0 at 224: MiB of activations, growing with the batch
