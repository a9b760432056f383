"""The Mask R-CNN demo config (configs/demo/mask_rcnn_evit_demo_shapes.py, `make demo-mask`): mmdet's
Mask R-CNN with the RetinaNet demo's backbone and neck on the demos' shared recipe, masks loaded from
DemoShapes' polygons and evaluated, and a short training on generated data that lowers the losses."""
import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes
from mmdet_efficientvit.resources import load_config

from _data import CONFIGS, build_random

DEMO = str(CONFIGS / 'demo' / 'mask_rcnn_evit_demo_shapes.py')
RETINANET_DEMO = str(CONFIGS / 'demo' / 'retinanet_evit_demo_shapes.py')
COCO_M0 = str(CONFIGS / 'mask_rcnn_evit_m0_fpn_1x_coco.py')


@pytest.fixture(scope='module')
def cfg():
    return load_config(DEMO)


def build(cfg):
    torch.manual_seed(0)
    return build_random(cfg)


def test_config_is_mask_rcnn_on_the_shared_recipe(cfg):
    coco, retinanet = load_config(COCO_M0), load_config(RETINANET_DEMO)
    assert tuple(cfg.classes) == DEMO_SHAPES_CLASSES
    assert cfg.model.type == coco.model.type == 'MaskRCNN'
    assert cfg.model.roi_head.type == coco.model.roi_head.type == 'StandardRoIHead'
    assert cfg.model.backbone == retinanet.model.backbone and cfg.model.neck == retinanet.model.neck
    # the demos' shared recipe and data, with masks loaded and evaluated
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg', 'test_dataloader', 'default_hooks'):
        assert cfg[key] == retinanet[key], key
    load = [s for s in cfg.train_dataloader.dataset.pipeline if s.type == 'LoadAnnotations']
    assert load == [dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False)]
    assert cfg.val_evaluator.metric == cfg.test_evaluator.metric == ['bbox', 'segm']
    assert cfg.val_evaluator.ann_file == retinanet.val_evaluator.ann_file
    assert cfg.model.test_cfg.rcnn.mask_thr_binary == 0.5


def test_strides_match_the_heads(cfg):
    model = build(cfg).eval()
    x = torch.rand(1, 3, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        feats = model.extract_feat(x)
    strides = [cfg.img_size // f.shape[-1] for f in feats]
    assert strides == list(cfg.model.rpn_head.anchor_generator.strides) == [8, 16, 32, 64]
    assert strides == cfg.model.roi_head.bbox_roi_extractor.featmap_strides
    assert strides == cfg.model.roi_head.mask_roi_extractor.featmap_strides
    assert all(f.shape[1] == cfg.model.rpn_head.in_channels for f in feats)


def test_demo_config_learns(cfg, tmp_path):
    """Six steps of the config's model and optimizer (AdamW, clipping; at the full lr: no warm-up
    in six steps) on one batch of DemoShapes through the config's own training pipeline (polygon
    masks), at 128 px for time: every loss but the tiny box regressions goes down."""
    data = generate_demo_shapes(str(tmp_path / 'shapes'), num_train=2, num_val=1, img_size=128,
                                seed=0)
    dataset_cfg = ConfigDict(cfg.train_dataloader.dataset.to_dict())
    dataset_cfg.update(data_root=data['root'] + '/', ann_file='train.json')
    resize, = [step for step in dataset_cfg.pipeline if step.type == 'Resize']
    resize.scale = (128, 128)
    init_default_scope('mmdet')
    dataset = DATASETS.build(dataset_cfg)
    torch.manual_seed(0)
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert all(len(s.gt_instances.masks) == len(s.gt_instances) > 0 for s in batch['data_samples'])
    model = build(cfg).train()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    history = []
    for _ in range(6):
        loss, log = model.parse_losses(model(**model.data_preprocessor(batch, True), mode='loss'))
        optim.update_params(loss)
        history.append({k: torch.as_tensor(v).item() for k, v in log.items()})
    first, last = history[0], history[-1]
    assert last['loss'] < 0.6 * first['loss'], [h['loss'] for h in history]
    for key in ('loss_rpn_cls', 'loss_cls', 'loss_mask'):
        assert last[key] < 0.9 * first[key], (key, [h[key] for h in history])
