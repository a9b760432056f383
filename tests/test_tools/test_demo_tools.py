"""The demo config, tools/demo.py (pictures with boxes) and the plotting tools (training curves,
latency against mAP)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmdet_efficientvit.analysis.benchmark.report import read_latencies
from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes

from _data import CONFIGS, load_tool

DEMO_CONFIG = str(CONFIGS / 'demo' / 'retinanet_evit_demo_shapes.py')


@pytest.fixture(scope='module')
def demo_model():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(DEMO_CONFIG)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model.eval()


def test_demo_config_matches_data_and_strides(demo_model):
    cfg, model = demo_model
    assert tuple(cfg.classes) == DEMO_SHAPES_CLASSES
    assert cfg.train_dataloader.dataset.metainfo.classes == cfg.classes
    assert cfg.model.backbone.type == 'EfficientViT' and cfg.model.neck.type == 'EfficientViTFPN'
    assert not cfg.model.backbone.norm_eval
    x = torch.rand(1, 3, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        feats = model.neck(model.backbone(x))
    strides = [cfg.img_size // f.shape[-1] for f in feats]
    assert strides == list(cfg.model.bbox_head.anchor_generator.strides)
    assert all(f.shape[1] == cfg.model.bbox_head.in_channels for f in feats)


def test_demo_tool_writes_pictures(demo_model, tmp_path):
    cfg, model = demo_model
    data = generate_demo_shapes(str(tmp_path / 'shapes'), 1, 3, (120, 90), seed=0)
    ckpt = str(tmp_path / 'random_init.pth')
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    demo = load_tool('demo.py')

    drawn = demo.main([data['val_img_dir'], DEMO_CONFIG, ckpt, '--out-dir',
                       str(tmp_path / 'drawn'), '--score-thr', '0.0', '--device', 'cpu',
                       '--cfg-options', 'model.test_cfg.score_thr=0.0'])
    assert [osp.basename(p) for p in drawn] == ['000000.png', '000001.png', '000002.png']
    blank = demo.main([osp.join(data['val_img_dir'], '000001.jpg'), DEMO_CONFIG, ckpt,
                       '--out-dir', str(tmp_path / 'blank'), '--score-thr', '1.0'])
    src = cv2.imread(osp.join(data['val_img_dir'], '000001.jpg'))
    for path in drawn + blank:
        out = cv2.imread(path)
        assert out is not None and out.shape == (90, 120, 3), path
    # Random init scores ~0.01, so boxes appear only once the model's own threshold is 0;
    # none scores above 1: the picture is the input.
    assert np.abs(cv2.imread(drawn[1]).astype(int) - src).max() > 50
    np.testing.assert_array_equal(cv2.imread(blank[0]), src)

    with pytest.raises(FileNotFoundError, match='neither an image file nor a folder'):
        demo.main([str(tmp_path / 'missing'), DEMO_CONFIG, ckpt])


def test_demo_tool_draws_a_two_stage_detector(tmp_path):
    """Mask R-CNN (the M0 COCO config) through DetInferencer: boxes and masks of a random-init
    checkpoint in mmengine's format, drawn at the input's size."""
    from mmdet.datasets import CocoDataset
    from mmdet.registry import MODELS
    config = str(CONFIGS / 'mask_rcnn_evit_m0_fpn_1x_coco.py')
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'mask_rcnn_random.pth')
    torch.save(dict(meta=dict(epoch=1, dataset_meta=dict(classes=CocoDataset.METAINFO['classes'])),
                    state_dict=MODELS.build(cfg.model).state_dict()), ckpt)
    data = generate_demo_shapes(str(tmp_path / 'shapes'), 1, 1, (120, 90), seed=0)
    image = osp.join(data['val_img_dir'], '000000.jpg')
    demo = load_tool('demo.py')
    drawn, = demo.main([image, config, ckpt, '--out-dir', str(tmp_path / 'drawn'), '--score-thr', '0',
                        '--cfg-options', 'model.backbone.init_cfg=None',
                        'model.test_cfg.rcnn.score_thr=0.0', 'model.test_cfg.rcnn.max_per_img=5',
                        'test_dataloader.dataset.pipeline.1.scale=(160,128)'])
    out, src = cv2.imread(drawn), cv2.imread(image)
    assert osp.basename(drawn) == '000000.png' and out.shape == src.shape == (90, 120, 3)
    assert np.abs(out.astype(int) - src).max() > 50  # something was drawn


def test_drawing_keeps_one_box_per_object_and_leaves_the_prediction_alone():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    from mmdet_efficientvit.apis.inference import for_drawing
    pred = DetDataSample(pred_instances=InstanceData(
        bboxes=torch.tensor([[10., 10, 50, 50], [11, 10, 50, 51], [60, 60, 90, 90], [0, 0, 5, 5]]),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.2]), labels=torch.tensor([0, 2, 1, 3])))
    drawn = for_drawing(pred, score_thr=0.5, dedup_iou=0.7)
    assert drawn.pred_instances.labels.tolist() == [0, 1]  # label 2 boxes the same object as label 0
    assert len(for_drawing(pred, score_thr=0.5, dedup_iou=1).pred_instances) == 3
    assert len(pred.pred_instances) == 4  # drawing only


def test_plot_curve(tmp_path):
    plot = load_tool('analysis_tools/plot_curve.py')
    scalars = tmp_path / 'run' / '20261128_000000' / 'vis_data' / 'scalars.json'
    scalars.parent.mkdir(parents=True)
    lines = [dict(lr=1e-3, loss=2.0 / (i + 1), loss_cls=1.0 / (i + 1), iter=i * 10, step=i * 10)
             for i in range(1, 8)]
    lines.append({'coco/bbox_mAP': 0.4, 'step': 1})
    scalars.write_text('\n'.join(json.dumps(r) for r in lines) + '\n')

    out = tmp_path / 'curve.png'
    counts = plot.plot_curves([str(scalars)], ['loss', 'coco/bbox_mAP'], str(out))
    assert counts == {'loss': {str(scalars): 7}, 'coco/bbox_mAP': {str(scalars): 1}}
    assert plot.series(plot.load_scalars(str(scalars)), 'loss') == (
        [10 * i for i in range(1, 8)], [2.0 / (i + 1) for i in range(1, 8)])
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 5

    plot.main([str(scalars), '--keys', 'loss_cls', '--out', str(tmp_path / 'cli.png')])
    assert cv2.imread(str(tmp_path / 'cli.png')) is not None
    with pytest.raises(KeyError, match='no record has'):
        plot.plot_curves([str(scalars)], ['loss_bbox'], str(tmp_path / 'x.png'))
    scalars.write_text('not json\n')
    with pytest.raises(ValueError, match='not a JSON record'):
        plot.load_scalars(str(scalars))


def test_plot_latency_map(tmp_path, capsys):
    """One variant's latencies from a benchmark CSV against the demo mAPs; bad --map entries and
    models the CSV lacks are one-line errors."""
    plot = load_tool('analysis_tools/plot_latency_map.py')
    csv_path = tmp_path / 'realtime.csv'
    csv_path.write_text('model,variant,latency_ms_bs1\n'
                        'A,onnxruntime end2end fp32,50\nB,onnxruntime end2end fp32,100\n'
                        'A,eager predict (deployed, NMS),80\n')
    out = tmp_path / 'map.png'
    assert read_latencies(str(csv_path), 'onnxruntime end2end fp32') == {'A': 50.0, 'B': 100.0}
    plot.main([str(csv_path), '--map', 'A=0.6', 'B=0.7', '--out', str(out)])
    img = cv2.imread(str(out))
    assert img is not None and img.std() > 5
    for argv, message in ((['--map', 'A:0.6'], 'is not MODEL=MAP'),
                          (['--map', 'C=0.6'], "no 'onnxruntime end2end fp32' row for ['C']"),
                          (['--map', 'A=0.6', '--variant', 'x'], 'has no rows of variant')):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            plot.main([str(csv_path), *argv, '--out', str(out)])
        err = capsys.readouterr().err
        assert exit_info.value.code == 1 and err.startswith('error: ') and message in err
        assert err.count('\n') == 1  # one line, no traceback
