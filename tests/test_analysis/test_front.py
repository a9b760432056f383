"""The speed-accuracy front (mmdet_efficientvit/analysis/front.py, tools/analysis_tools/front.py):
the final bbox mAP read from real mmengine work dirs (RTMDet-EfficientViT-M0 and RTMDet-tiny trained
for a few iterations on generated DemoShapes), unfinished work dirs refused in one line, the Pareto
helpers, the ONNX fp32 and INT8 mAPs of a run (analysis/int8_accuracy.py) against the training's own
validation and in the report, the refusals of bad input, and the command end to end (slow)."""
import csv
import json
import math
import re
import shutil
from pathlib import Path

import cv2
import pytest
from mmengine.runner import Runner

from mmdet_efficientvit.analysis.front import (Front, Run, UnfinishedRun, dominated_by,
                                               pareto_front, read_run, write_front)
from mmdet_efficientvit.analysis.int8_accuracy import GraphMaps, graph_maps
from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes
from mmdet_efficientvit.resources import load_config
from mmdet_efficientvit.tools_support.data_checks import split_data

from _data import CONFIGS, error_line, load_tool, mmdet_predictions

EPOCHS = 2
FIX = 'delete the directory to train it again (or rerun with --retrain: every run trains again)'
DEMOS = {'rtmdet_evit_demo_shapes': 'demo/rtmdet_evit_demo_shapes.py',
         'rtmdet_tiny_demo_shapes': 'demo/rtmdet_tiny_demo_shapes.py'}
# the last validation of a run in mmengine's text log, independent of the JSON result files
VAL_LINE = re.compile(rf'Epoch\(val\) \[{EPOCHS}\].*coco/bbox_mAP: (-?\d+\.\d+)')


def write_tiny_demo(path: Path, base: str, data_root: Path, size: int = 64) -> Path:
    """A demo config at ``size`` px on ``data_root``, trained for EPOCHS epochs of two iterations,
    validated after each, the checkpoint at the end (the demo recipe otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"""
_base_ = {str(CONFIGS / base)!r}
data_root = {str(data_root) + '/'!r}
train_pipeline = [
    dict(type='LoadImageFromFileOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({size}, {size}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={EPOCHS}, val_interval=1)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval={EPOCHS}))
log_processor = dict(window_size=1)
""")
    return path


@pytest.fixture(scope='module')
def tiny_demos(tmp_path_factory):
    """The two demo configs shrunk onto 4 + 2 generated DemoShapes images at 64 px."""
    root = tmp_path_factory.mktemp('front')
    data = generate_demo_shapes(str(root / 'shapes'), 4, 2, 64, seed=0)
    return root, {name: write_tiny_demo(root / 'configs' / f'{name}.py', base, Path(data['root']))
                  for name, base in DEMOS.items()}


@pytest.fixture(scope='module')
def trained(tiny_demos):
    """A finished work dir of each demo, trained in this process (EPOCHS x 2 iterations)."""
    root, configs = tiny_demos
    dirs = {}
    for name, config in configs.items():
        cfg = load_config(str(config))
        cfg.work_dir = str(root / 'work_dirs' / name / 'seed0')
        cfg.visualizer.name = name  # mmengine's visualizer is one instance per name and process
        Runner.from_cfg(cfg).train()
        dirs[name] = Path(cfg.work_dir)
    return dirs


def last_val_map(work_dir: Path) -> float:
    (log, ) = work_dir.glob('*/*.log')
    return float(VAL_LINE.findall(log.read_text())[-1])


@pytest.mark.parametrize('name', list(DEMOS))
def test_reads_the_final_validation(trained, tiny_demos, name):
    """bbox mAP of the last epoch's validation (not the first one's), as the text log has it, and
    the final checkpoint; a later tools/test.py run in the work dir is passed over."""
    work_dir = trained[name]
    run = read_run(Run(str(tiny_demos[1][name]), 0, str(work_dir), EPOCHS))
    assert run.bbox_mAP == pytest.approx(last_val_map(work_dir), abs=5e-4)
    assert run.checkpoint == str(work_dir / f'epoch_{EPOCHS}.pth')
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    text = scalars.read_text()
    records = [json.loads(x) for x in text.splitlines()]
    assert [r['step'] for r in records if 'coco/bbox_mAP' in r] == [1, EPOCHS]
    first = next(r for r in records if 'coco/bbox_mAP' in r)  # the epoch-1 validation
    scalars.write_text(text.replace(json.dumps(first), json.dumps(dict(first, **{
        'coco/bbox_mAP': run.bbox_mAP + 0.5}))))
    assert read_run(Run('x.py', 0, str(work_dir), EPOCHS)).bbox_mAP == run.bbox_mAP
    scalars.write_text(text)
    test_run = work_dir / '29991231_000000'  # what tools/test.py leaves: metrics, no training
    test_run.mkdir()
    (test_run / f'{test_run.name}.json').write_text(json.dumps({'coco/bbox_mAP': 0.99}) + '\n')
    assert read_run(Run('x.py', 0, str(work_dir), EPOCHS)).bbox_mAP == run.bbox_mAP
    shutil.rmtree(test_run)
    assert read_run(Run('x.py', 0, str(work_dir.parent / 'seed1'), EPOCHS)) is None  # not trained


def unfinished(work_dir: Path, max_epochs: int = EPOCHS) -> str:
    with pytest.raises(UnfinishedRun) as err:
        read_run(Run('x.py', 0, str(work_dir), max_epochs))
    message = str(err.value)
    assert '\n' not in message and message.startswith(f'{work_dir}: training did not finish (')
    assert message.endswith(FIX)
    return message


def test_unfinished_work_dirs_are_one_line(trained, tmp_path):
    """A run stopped early, a crashed rerun, a missing checkpoint, missing metrics, no log."""
    finished = trained['rtmdet_evit_demo_shapes']
    assert 'stopped in epoch 2 of 3' in unfinished(finished, max_epochs=3)
    work_dir = tmp_path / 'seed0'
    shutil.copytree(finished, work_dir)
    crashed = work_dir / '29991231_000000' / 'vis_data'  # a later run that died in epoch 1
    crashed.mkdir(parents=True)
    (crashed / 'scalars.json').write_text(json.dumps(dict(loss=1.0, epoch=1, iter=1, step=1)) + '\n')
    assert 'stopped in epoch 1 of 2' in unfinished(work_dir)
    shutil.rmtree(crashed.parent)
    (scalars, ) = work_dir.glob('*/vis_data/scalars.json')
    lines = scalars.read_text().splitlines()
    scalars.write_text('\n'.join(x for x in lines if 'coco/bbox_mAP' not in x or '"step": 1' in x))
    assert 'no coco/bbox_mAP of the epoch-2 validation' in unfinished(work_dir)
    scalars.write_text('\n'.join(lines))
    (work_dir / f'epoch_{EPOCHS}.pth').unlink()
    assert f'no epoch_{EPOCHS}.pth' in unfinished(work_dir)
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert 'no training log' in unfinished(empty)


def test_unfinished_work_dir_refused_before_training(trained, tiny_demos, tmp_path, capsys):
    """The command refuses an unfinished work dir in one line, naming the fix, and trains nothing."""
    root, configs = tiny_demos
    work_root = tmp_path / 'work'
    partial = work_root / 'rtmdet_evit_demo_shapes' / 'seed0'
    shutil.copytree(trained['rtmdet_evit_demo_shapes'], partial)
    (partial / f'epoch_{EPOCHS}.pth').unlink()
    front = load_tool('analysis_tools/front.py')
    err = error_line(capsys, front.main, [
        '--configs', str(configs['rtmdet_evit_demo_shapes']), '--reference',
        str(configs['rtmdet_tiny_demo_shapes']), '--work-root', str(work_root)])
    assert err == f'error: {partial}: training did not finish (no epoch_{EPOCHS}.pth): {FIX}'
    assert not (work_root / 'rtmdet_tiny_demo_shapes').exists()


@pytest.mark.parametrize('name', list(DEMOS))
def test_int8_maps_of_a_trained_run(trained, tiny_demos, tmp_path, name):
    """The run's checkpoint exported end to end at the test size and quantized on the training
    images: the float graph scores what PyTorch (mmdet's pipeline, ``predict`` and CocoMetric)
    scores with the same checkpoint on the same val images, and INT8 a finite mAP of its own.

    Trained for a few iterations, every model scores 0 on the real val annotations, so both are
    scored against PyTorch's own most confident detections (3 per image), where they score high."""
    from mmdet.evaluation import CocoMetric
    config, work_dir = str(tiny_demos[1][name]), trained[name]
    checkpoint = str(work_dir / f'epoch_{EPOCHS}.pth')
    ann_file, img_dir = split_data(load_config(config), 'val')
    ann = json.loads(Path(ann_file).read_text())
    preds = mmdet_predictions(config, checkpoint, [f'{img_dir}{im["file_name"]}' for im in ann['images']])
    gt = []
    for im, pred in zip(ann['images'], preds):
        for (x1, y1, x2, y2), label in zip(pred['bboxes'][:3].tolist(), pred['labels'][:3].tolist()):
            gt.append(dict(id=len(gt) + 1, image_id=im['id'], category_id=label + 1, iscrowd=0,
                           bbox=[x1, y1, x2 - x1, y2 - y1], area=(x2 - x1) * (y2 - y1)))
    gt_file = tmp_path / 'own_detections.json'
    gt_file.write_text(json.dumps(dict(ann, annotations=gt)))
    metric = CocoMetric(ann_file=str(gt_file), metric='bbox')
    metric.dataset_meta = dict(classes=DEMO_SHAPES_CLASSES)
    pytorch_map = metric.compute_metrics([({}, dict(pred, img_id=im['id']))
                                          for im, pred in zip(ann['images'], preds)])['bbox_mAP']
    logged = []
    maps = graph_maps(config, checkpoint, {'val_dataloader.dataset.ann_file': str(gt_file)}, 3, 1,
                      logged.append)
    assert pytorch_map > 0.5
    assert maps.fp32 == pytest.approx(pytorch_map, abs=1e-3)  # CocoMetric rounds to 1e-3
    assert maps.calibration_images == 3  # of the 4 training images
    assert math.isfinite(maps.int8) and 0 <= maps.int8 <= 1 and maps.loss == maps.fp32 - maps.int8
    assert logged[0].startswith('exported at 64x64 and quantized on 3 images of ')
    assert logged[0].endswith(f'scoring both on {gt_file}')


def report_rows(tmp_path: Path, runs, latency) -> tuple:
    front = Front(runs, latency, 'b.py', ['b.py'], dict(threads='1'), ['a note'])
    write_front(front, str(tmp_path / 'front.csv'))
    return list(csv.DictReader(open(tmp_path / 'front.csv'))), (tmp_path / 'front.md').read_text()


def test_int8_columns_in_the_report(tmp_path):
    """With INT8 mAPs the CSV and the table get the ONNX fp32 mAP, the INT8 mAP and the loss per
    run and their means over seeds; without, neither has those columns."""
    latency = {c: dict(latency=ms, latency_int8=ms / 2) for c, ms in (('a.py', 10.), ('b.py', 20.))}
    runs = [Run('a.py', 0, 'w/a0', 1, 0.50, 'a0.pth', GraphMaps(0.51, 0.50, 4, 1.)),
            Run('a.py', 1, 'w/a1', 1, 0.60, 'a1.pth', GraphMaps(0.60, 0.57, 4, 1.)),
            Run('b.py', 0, 'w/b0', 1, 0.70, 'b0.pth', GraphMaps(0.70, 0.71, 4, 1.))]
    rows, table = report_rows(tmp_path, runs, latency)
    assert [(r['bbox_mAP_onnx_fp32'], r['bbox_mAP_int8'], r['int8_loss']) for r in rows] == [
        ('0.5100', '0.5000', '0.0100'), ('0.6000', '0.5700', '0.0300'), ('0.7000', '0.7100', '-0.0100')]
    assert [(r['bbox_mAP_int8_mean'], r['int8_loss_mean']) for r in rows] == [
        ('0.5350', '0.0200'), ('0.5350', '0.0200'), ('0.7100', '-0.0100')]
    header = table.splitlines()[0]
    assert '| ONNX fp32 mAP | INT8 mAP | INT8 mean | INT8 loss | INT8 loss mean |' in header
    assert '| `a.py` | 1 | 0.6000 | 0.5500 | 0.6000 | 0.5700 | 0.5350 | 0.0300 | 0.0200 | 10.00 |' in table
    for run in runs:
        run.graph_maps = None
    rows, table = report_rows(tmp_path, runs, latency)
    assert not any('int8_loss' in key or 'onnx_fp32' in key for key in rows[0])
    assert 'INT8 loss' not in table and '| `a.py` | 1 | 0.6000 | 0.5500 | 10.00 |' in table


def test_pareto_front_and_baselines():
    points = {'m0': (80, 0.63), 'm2': (114, 0.64), 'm4': (133, 0.69), 'tiny': (168, 0.67),
              's': (284, 0.70), 'slow': (300, 0.60), 'tie': (133, 0.69)}
    assert pareto_front(points) == ['m0', 'm2', 'm4', 'tie', 's']
    assert pareto_front({'a': (1, 0.5)}) == ['a']
    assert dominated_by(points, ['tiny', 's']) == {
        'm0': [], 'm2': [], 'm4': [], 'slow': ['tiny', 's'], 'tie': []}
    # beaten on one axis only is not beaten; equal on both is not beaten either
    assert dominated_by({'x': (100, 0.5), 'r': (100, 0.6)}, ['r']) == {'x': ['r']}
    assert dominated_by({'x': (100, 0.6), 'r': (100, 0.6)}, ['r']) == {'x': []}


def test_refusals(tmp_path, capsys):
    """One line each: a missing config, a missing reference, a config that is not a detector, a
    seed listed twice, a model change in --cfg-options."""
    front = load_tool('analysis_tools/front.py')
    m0, tiny = (str(CONFIGS / DEMOS[n]) for n in ('rtmdet_evit_demo_shapes', 'rtmdet_tiny_demo_shapes'))
    backbone = tmp_path / 'backbone_only.py'
    backbone.write_text("model = dict(type='ResNet', depth=18)\ntrain_cfg = dict(max_epochs=1)\n")
    data_only = tmp_path / 'data_only.py'
    data_only.write_text("_base_ = 'mmdet::_base_/datasets/coco_detection.py'\n")
    work = ['--work-root', str(tmp_path / 'work')]
    cases = [
        (['--configs', 'configs/demo/nope.py', '--reference', tiny],
         'error: config not found: configs/demo/nope.py (give the config file'),
        (['--configs', m0, '--reference', 'configs/demo/rtmdet_tiny.py'],
         'error: --reference config not found: configs/demo/rtmdet_tiny.py'),
        (['--configs', str(backbone), '--reference', tiny],
         f"error: {backbone} is not a detector config (its model type is 'ResNet', not one of mmdet's"),
        (['--configs', str(data_only), '--reference', tiny],
         f'error: {data_only} is not a detector config (its model type is None'),
        (['--configs', m0, '--reference', tiny, '--seeds', '0', '1', '0'],
         'error: --seeds 0 1 0: seed 0 is listed twice; list each seed once'),
        (['--configs', m0, '--reference', tiny, '--cfg-options', 'model.neck.out_channels=8'],
         'error: --cfg-options model.neck.out_channels: the front sets seeds and work dirs'),
    ]
    for argv, start in cases:
        assert error_line(capsys, front.main, argv + work).startswith(start), argv
    assert not (tmp_path / 'work').exists()


def test_int8_map_without_its_data(tiny_demos, tmp_path, capsys):
    """--int8-map on a config whose val set, or whose training images, are not there: one line
    naming the missing path and the fix, before anything is trained."""
    front = load_tool('analysis_tools/front.py')
    root, configs = tiny_demos
    data = tmp_path / 'shapes'
    shutil.copytree(Path(root, 'shapes'), data)
    config = write_tiny_demo(tmp_path / 'configs' / 'rtmdet_evit_demo_shapes.py',
                             DEMOS['rtmdet_evit_demo_shapes'], data)
    argv = ['--configs', str(config), '--reference', str(config), '--int8-map',
            '--work-root', str(tmp_path / 'work')]
    fix = 'put the dataset there (DemoShapes: tools/run_demo.sh generates data/demo_shapes) or pass'
    (data / 'val.json').unlink()
    err = error_line(capsys, front.main, argv)
    assert err.startswith(f'error: {config}: the INT8 mAP needs the val annotation file {data}/val.json, '
                          f'which is not there: {fix} --cfg-options val_dataloader.dataset.data_root=')
    shutil.copy(Path(root, 'shapes', 'val.json'), data / 'val.json')
    shutil.rmtree(data / 'train')
    err = error_line(capsys, front.main, argv)
    assert f'needs the training image folder {data}/train/, which is not there: {fix}' in err
    assert err.endswith('--cfg-options train_dataloader.dataset.data_root=/path/to/data/')
    assert not (tmp_path / 'work').exists()


@pytest.mark.slow
def test_front_command_end_to_end(tiny_demos, tmp_path, monkeypatch, capsys):
    """Train M0 and RTMDet-tiny (one seed, two at once), read their mAPs, time both graphs, write
    the CSV, the table and the plot; a second run reuses both work dirs; a training that fails is
    one line."""
    _, configs = tiny_demos
    monkeypatch.chdir(tiny_demos[0])
    m0, tiny = (str(configs[n].relative_to(tiny_demos[0])) for n in DEMOS)
    front = load_tool('analysis_tools/front.py')
    argv = ['--configs', m0, '--reference', tiny, '--seeds', '0', '--jobs', '2', '--size', '64x64',
            '--repeats', '1', '--warmup', '1', '--min-run-time', '0.01', '--progress-every', '1',
            '--work-root', 'work_front', '--out', 'results/front.csv']
    result = front.main(argv + ['--int8-map', '--calib-num', '2'])
    log = capsys.readouterr().err
    for name in DEMOS:
        assert f'{name} seed 0: training into work_front/{name}/seed0' in log
        assert re.search(rf'{name} seed 0: trained in \d+\.\d min', log)
        assert re.search(rf'{name} seed 0: bbox_mAP \S+ \(PyTorch\), ONNX fp32 \S+, INT8 \S+ '
                         r'\(loss [+-]\d\.\d{4}\) in \d+ s', log)
    rows = list(csv.DictReader(open('results/front.csv')))
    assert [(r['config'], r['seed']) for r in rows] == [(m0, '0'), (tiny, '0')]
    for row, name in zip(rows, DEMOS):
        work_dir = Path('work_front', name, 'seed0')
        assert float(row['bbox_mAP']) == pytest.approx(last_val_map(work_dir), abs=5e-4)
        assert row['bbox_mAP_mean'] == row['bbox_mAP'] and float(row['latency_ms']) > 0
        assert float(row['latency_int8_ms']) > 0
        assert row['weights'] == 'trained (seed 0 checkpoints)' and row['input_size'] == '64x64'
        fp32, int8 = float(row['bbox_mAP_onnx_fp32']), float(row['bbox_mAP_int8'])
        assert fp32 == pytest.approx(float(row['bbox_mAP']), abs=1e-3) and 0 <= int8 <= 1
        assert float(row['int8_loss']) == pytest.approx(fp32 - int8, abs=2e-4)
    assert rows[1]['ratio_to_tiny'] == '1.000' and rows[1]['ratio_int8_to_tiny'] == '1.000'
    # the CSV rounds latencies to 0.01 ms and ratios to 0.001: allow exactly that rounding
    ours_ms, tiny_ms = float(rows[0]['latency_ms']), float(rows[1]['latency_ms'])
    ratio = ours_ms / tiny_ms
    assert float(rows[0]['ratio_to_tiny']) == pytest.approx(
        ratio, abs=5e-4 + ratio * 0.005 * (1 / ours_ms + 1 / tiny_ms))
    assert [r.bbox_mAP for r in result.runs] == [float(r['bbox_mAP']) for r in rows]
    table = Path('results/front.md').read_text()
    assert (f'| `{m0}` | 0 | {rows[0]["bbox_mAP"]} | {rows[0]["bbox_mAP_mean"]} | '
            f'{rows[0]["bbox_mAP_onnx_fp32"]} | {rows[0]["bbox_mAP_int8"]} |') in table
    assert 'INT8 loss = ONNX fp32 mAP - INT8 mAP' in table
    img = cv2.imread('results/front.png')
    assert img is not None and img.shape[1] > 500 and img.std() > 5
    runs_before = sorted(p.name for p in Path('work_front').glob('*/seed0/*/'))

    front.main(argv)  # everything finished: reused, nothing trained
    log = capsys.readouterr().err
    assert '0 of 2 runs to train' in log and 'reusing work_front/rtmdet_tiny_demo_shapes/seed0' in log
    assert sorted(p.name for p in Path('work_front').glob('*/seed0/*/')) == runs_before

    broken = write_tiny_demo(Path('configs/broken_demo.py'), DEMOS['rtmdet_evit_demo_shapes'],
                             Path('no_such_data'))
    with pytest.raises(SystemExit) as exit_info:
        front.main(argv[:1] + [str(broken)] + argv[2:])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress lines
    assert err.startswith('error: work_front/broken_demo/seed0: training failed (exit 1: error: ')
    assert err.endswith(f'see work_front/broken_demo/seed0/front_train.log, then {FIX}')
