"""The COCO configs: the official 1x recipe field by field, every model builds and trains a step, the
official detection checkpoints' key layout loads strictly, and the README's drop-in snippets work
in mmdet's own Faster R-CNN and FCOS configs."""
import subprocess
import sys

import pytest
import torch
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.runner import load_checkpoint

import mmdet_efficientvit  # noqa: F401

from mmdet_efficientvit.model_zoo import ARCHS, imagenet_checkpoint
from mmdet_efficientvit.models import EfficientViT

from _data import (CONFIGS, mmdet2_meta,
                   official_bias_idxs, official_mask_rcnn_head_shapes, official_neck_shapes,
                   official_retinanet_head_shapes, tool_env, build_random, train_step_decays)

RETINANET = [f'retinanet_evit_{a}_fpn_1x_coco.py' for a in ARCHS]
MASK_RCNN = [f'mask_rcnn_evit_{a}_fpn_1x_coco.py' for a in ARCHS]
ALL = RETINANET + MASK_RCNN


def load(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / name))


def plain(d) -> dict:
    """A config dict without the ``_scope_`` marker that ``mmdet::`` bases add."""
    return {k: v for k, v in d.items() if k != '_scope_'}


def find(pipeline, type_):
    return [t for t in pipeline if t['type'] == type_]


@pytest.mark.parametrize('name', ALL)
def test_official_1x_recipe(name):
    cfg = load(name)
    arch = name.split('_evit_')[1][:2]
    mask = name in MASK_RCNN

    assert 'mmdet_efficientvit' in cfg.custom_imports.imports
    assert cfg.default_scope == 'mmdet'
    # optimizer: AdamW 1e-4, betas (0.9, 0.999), wd 0.05, no decay on attention biases, no clipping
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert plain(cfg.optim_wrapper.optimizer) == dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {'attention_biases': {'decay_mult': 0.0}}
    assert cfg.optim_wrapper.get('clip_grad') is None
    # schedule: 12 epochs, linear warm-up 500 iters from 0.001, x0.1 at epochs 8 and 11
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 12
    warmup, steps = cfg.param_scheduler
    assert plain(warmup) == dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500)
    assert plain(steps) == dict(type='MultiStepLR', begin=0, end=12, by_epoch=True,
                               milestones=[8, 11], gamma=0.1)
    # batch 2 per GPU x 8 GPUs, LR auto-scaling relative to 16
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.auto_scale_lr.base_batch_size == 16
    # data: COCO 2017 under data/coco/, Resize (1333, 800) keep ratio, flip 0.5, pad to 32
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.test_dataloader.dataset.pipeline):
        (resize,) = find(pipeline, 'Resize')
        assert tuple(resize.scale) == (1333, 800) and resize.keep_ratio
    (flip,) = find(cfg.train_dataloader.dataset.pipeline, 'RandomFlip')
    assert flip.prob == 0.5
    assert cfg.model.data_preprocessor.pad_size_divisor == 32
    # backbone: BN frozen in eval mode, all stages trainable, ImageNet weights of the same arch
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.norm_eval, bb.frozen_stages) == ('EfficientViT', arch, True, -1)
    assert tuple(bb.out_indices) == (0, 1, 2)
    assert plain(bb.init_cfg) == dict(type='Pretrained', checkpoint=imagenet_checkpoint(arch))
    neck = cfg.model.neck
    assert neck.type == 'EfficientViTFPN' and neck.in_channels == EfficientViT.arch_zoo[arch]['embed_dims']
    assert (neck.out_channels, neck.start_level, neck.num_outs) == (256, 0, 5)
    if mask:
        assert neck.num_extra_trans_convs == 2 and not neck.get('add_extra_convs', False)
        assert cfg.val_evaluator.metric == ['bbox', 'segm']
    else:
        assert neck.num_extra_trans_convs == 1 and neck.add_extra_convs == 'on_input'
        assert cfg.val_evaluator.metric == 'bbox'
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


@pytest.mark.parametrize('name', ALL)
def test_builds_and_trains_a_step(name):
    """Build, then one forward+backward on two 128x160 images; strides must match the heads."""
    torch.manual_seed(0)
    cfg = load(name)
    mask = name in MASK_RCNN
    model = build_random(cfg)
    model.train()
    bns = [m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)  # norm_eval=True

    packed = demo_mm_inputs(2, [(3, 128, 160)] * 2, num_items=[3, 2], num_classes=80, with_mask=mask)
    data = model.data_preprocessor(packed, True)
    assert data['inputs'].shape[-2:] == (128, 160)  # already multiples of 32
    feats = model.extract_feat(data['inputs'])
    strides = (4, 8, 16, 32, 64) if mask else (8, 16, 32, 64, 128)
    assert [tuple(f.shape[-2:]) for f in feats] == [(-(-128 // s), -(-160 // s)) for s in strides]

    # the optimizer the config builds: attention-bias tables without weight decay, the rest 0.05
    decays = train_step_decays(model, data, cfg.optim_wrapper)
    biases = [n for n in decays if n.endswith('attention_biases')]
    assert biases and all(decays[n] == 0 for n in biases)
    assert all(d == 0.05 for n, d in decays.items() if n not in biases)


@pytest.mark.parametrize('name, neck_layout, heads', [
    ('retinanet_evit_m4_fpn_1x_coco.py', (1, 1),
     {f'bbox_head.{k}': v for k, v in official_retinanet_head_shapes().items()}),
    ('mask_rcnn_evit_m4_fpn_1x_coco.py', (2, 0), official_mask_rcnn_head_shapes()),
])
def test_official_detection_checkpoint_layout_loads_strictly(tmp_path, name, neck_layout, heads):
    """A checkpoint in the released mmdet 2.x layout (``meta`` + ``state_dict``; ``backbone.`` in the
    official names, neck and heads as written from the official code) loads with zero missing and
    zero unexpected keys, and its values arrive."""
    model = build_random(load(name))
    backbone = {f'backbone.{k}': tuple(v.shape) for k, v in model.backbone.state_dict().items()}
    assert 'backbone.patch_embed.0.c.weight' in backbone  # official names, not timm's
    tables = {k: s for k, s in backbone.items() if k.endswith('attention_biases')}
    assert tables and all(s[-1] == 49 for s in tables.values())  # every table 7x7, as released
    # the release also holds each attention's (49, 49) index buffer
    idxs = {k.replace('attention_biases', 'attention_bias_idxs'): (49, 49) for k in tables}
    neck = {f'neck.{k}': v for k, v in official_neck_shapes(
        EfficientViT.arch_zoo['m4']['embed_dims'], 256, *neck_layout).items()}
    official = {**backbone, **idxs, **neck, **heads}

    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: s for k, s in official.items() if k not in idxs}

    g = torch.Generator().manual_seed(0)
    state_dict = {k: torch.randn(s, generator=g) for k, s in official.items() if k not in idxs}
    for k in state_dict:
        if k.endswith('num_batches_tracked'):  # an integer buffer
            state_dict[k] = torch.randint(1, 10**6, (), generator=g)
    state_dict.update({k: official_bias_idxs(7) for k in idxs})
    path = tmp_path / 'official.pth'
    torch.save(dict(meta=mmdet2_meta([f'c{i}' for i in range(80)]), state_dict=state_dict), path)
    fresh = build_random(load(name))
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state_dict[k]), k


# The README's "use it in any mmdet config" snippets: these exact lines, appended to mmdet's configs.
DROP_IN = {
    'faster_rcnn': """
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True, type='EfficientViT', arch='m4', out_indices=(0, 1, 2), norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='efficientvit://efficientvit_m4.pth')),
    neck=dict(
        _delete_=True, type='EfficientViTFPN', in_channels=[128, 256, 384], out_channels=256,
        start_level=0, num_outs=5, num_extra_trans_convs=2))  # strides 4-64
""",
    'fcos': """
_base_ = 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
custom_imports = dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)
model = dict(
    data_preprocessor=dict(  # EfficientViT was trained on RGB images with ImageNet mean/std
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True, type='EfficientViT', arch='m4', out_indices=(0, 1, 2), norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='efficientvit://efficientvit_m4.pth')),
    neck=dict(
        _delete_=True, type='EfficientViTFPN', in_channels=[128, 256, 384], out_channels=256,
        start_level=0, add_extra_convs='on_output', relu_before_extra_convs=True, num_outs=5,
        num_extra_trans_convs=1))  # strides 8-128
""",
}

# Runs in a fresh interpreter that never imports mmdet_efficientvit itself: only custom_imports can
# register EfficientViT there.
TRAIN_STEP = """
import sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
assert 'mmdet_efficientvit' not in sys.modules
for path in sys.argv[1:]:
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # random init: no download in tests
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(demo_mm_inputs(2, [(3, 128, 160)] * 2, num_classes=80), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert torch.isfinite(loss) and loss > 0, loss
    assert type(model.backbone).__name__ == 'EfficientViT'
    assert type(model.neck).__name__ == 'EfficientViTFPN'
    print(type(model).__name__, 'loss', float(loss))
"""


@pytest.mark.slow
def test_drop_in_mmdet_configs(tmp_path):
    paths = []
    for name, text in DROP_IN.items():
        paths.append(tmp_path / f'{name}_evit.py')
        paths[-1].write_text(text)
    out = subprocess.run([sys.executable, '-c', TRAIN_STEP, *map(str, paths)], cwd=tmp_path,
                         env=tool_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert 'FasterRCNN loss' in out.stdout and 'FCOS loss' in out.stdout, out.stdout
