"""The real-time configs (configs/rtmdet_evit_m*_8xb32-300e_coco.py): mmdet's RTMDet-tiny recipe field by
field with the EfficientViT backbone swapped in, the stride bridge's strides, a training step of every
arch, the depthwise variants (``*_dw_*``: the plain config with depthwise-separable neck and head convs)
and the demo configs (ours M0/M2-M5 and mmdet's RTMDet-tiny and RTMDet-s trained with one recipe, the
depthwise points of the front) with the stride-bridge ablations of docs/realtime.md."""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.testing import demo_mm_inputs
from mmengine.config import ConfigDict

import mmdet_efficientvit  # noqa: F401

from mmdet_efficientvit.model_zoo import ARCHS, imagenet_checkpoint
from mmdet_efficientvit.models import EfficientViT
from mmdet_efficientvit.resources import load_config

from _data import CONFIGS, build_random, train_step_decays

RTMDET = [f'rtmdet_evit_{a}_8xb32-300e_coco.py' for a in ARCHS]
RTMDET_DW = [f'rtmdet_evit_{a}_dw_8xb32-300e_coco.py' for a in ARCHS]
TINY = 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py'
DEMO = 'demo/rtmdet_evit_demo_shapes.py'
DEMO_TINY = 'demo/rtmdet_tiny_demo_shapes.py'
DEMO_S = 'demo/rtmdet_s_demo_shapes.py'
S = 'mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py'


def configs(pattern: str) -> list:
    """The configs that ``pattern`` matches under configs/, relative to it."""
    return sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.glob(pattern))


DEMO_FAMILY = configs('demo/rtmdet_evit_m?_demo_shapes.py')  # M2..M5
DEMO_DW = configs('demo/rtmdet_evit_m?_dw_demo_shapes.py')
ABLATIONS = configs('demo/ablations/*.py')
BUILT = RTMDET + RTMDET_DW + [DEMO, DEMO_TINY, DEMO_S] + DEMO_FAMILY + DEMO_DW + ABLATIONS
# What a depthwise variant sets on its plain config (mmdet's flags; RTMDetSepBNHead shares plain
# convs only, so the depthwise head's convs are per level).
DEPTHWISE = dict(neck=dict(use_depthwise=True),
                 bbox_head=dict(use_depthwise=True, share_conv=False))


def plain(x):
    """``x`` without the ``_scope_`` markers that ``mmdet::`` bases add, at any depth."""
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items() if k != '_scope_'}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    return x


def types(pipeline):
    return [t['type'] for t in pipeline]


RECIPE = ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
          'custom_hooks', 'val_evaluator')


def assert_same_recipe(cfg, ref) -> None:
    """The two configs train and evaluate on the same data with the same schedule and hooks."""
    for key in RECIPE:
        assert cfg[key] == ref[key], key


@pytest.mark.parametrize('name', RTMDET)
def test_rtmdet_tiny_recipe_with_efficientvit(name):
    cfg, tiny = (ConfigDict(plain(load_config(c).to_dict())) for c in (str(CONFIGS / name), TINY))
    arch = name.split('_evit_')[1][:2]
    assert 'mmdet_efficientvit' in cfg.custom_imports.imports
    # the recipe is RTMDet-tiny's: schedule, optimizer, LR policy, batch, EMA, pipeline switch, test_cfg
    for key in ('train_cfg', 'param_scheduler', 'auto_scale_lr', 'val_evaluator'):
        assert cfg[key] == tiny[key], key
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == 32
    assert cfg.optim_wrapper.optimizer == tiny.optim_wrapper.optimizer  # AdamW 0.004, wd 0.05
    paramwise = cfg.optim_wrapper.paramwise_cfg
    assert {k: paramwise[k] for k in tiny.optim_wrapper.paramwise_cfg} == \
        tiny.optim_wrapper.paramwise_cfg
    assert paramwise.custom_keys == {'attention_biases': {'decay_mult': 0.0}}
    own = ('in_channels', 'feat_channels', 'nms_pre')  # nms_pre: RetinaNet's 1000 per level
    for key in ('bbox_head', 'train_cfg', 'test_cfg'):
        head = {k: v for k, v in cfg.model[key].items() if k not in own}
        assert head == {k: v for k, v in tiny.model[key].items() if k not in own}, key
    assert cfg.model.test_cfg.nms_pre == 1000 and tiny.model.test_cfg.nms_pre == 30000
    assert cfg.model.bbox_head.anchor_generator.strides == [8, 16, 32]
    # the data: RTMDet-tiny's pipelines with the skipping loader, in both training stages
    ours = cfg.train_dataloader.dataset.pipeline
    assert types(ours) == ['LoadImageFromFileOrSkip'] + types(tiny.train_dataloader.dataset.pipeline)[1:]
    assert ours[1:] == tiny.train_dataloader.dataset.pipeline[1:]
    assert cfg.test_dataloader == tiny.test_dataloader and cfg.val_dataloader == tiny.val_dataloader
    hooks = {h['type']: h for h in cfg.custom_hooks}
    tiny_hooks = {h['type']: h for h in tiny.custom_hooks}
    assert hooks['EMAHook'] == tiny_hooks['EMAHook']
    switch, tiny_switch = hooks['PipelineSwitchHook'], tiny_hooks['PipelineSwitchHook']
    assert switch.switch_epoch == tiny_switch.switch_epoch == 280
    assert types(switch.switch_pipeline) == \
        ['LoadImageFromFileOrSkip'] + types(tiny_switch.switch_pipeline)[1:]
    assert switch.switch_pipeline[1:] == tiny_switch.switch_pipeline[1:]
    assert 'SkippedImagesHook' in hooks
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == tiny.default_hooks.checkpoint.interval
    # the backbone: ImageNet weights of its arch, RGB with ImageNet statistics, every BN trained
    bb = cfg.model.backbone
    assert (bb.type, bb.arch, bb.norm_eval, bb.frozen_stages) == ('EfficientViT', arch, False, -1)
    assert bb.init_cfg == dict(type='Pretrained', checkpoint=imagenet_checkpoint(arch))
    pre = cfg.model.data_preprocessor
    assert pre.bgr_to_rgb and pre.mean == [123.675, 116.28, 103.53]
    neck = cfg.model.neck
    assert neck.in_channels == EfficientViT.arch_zoo[arch]['embed_dims']
    assert neck.out_channels == cfg.model.bbox_head.in_channels == tiny.model.neck.out_channels


def test_every_rtmdet_config_is_built_and_trained():
    """Every RTMDet config under configs/ (real-time, depthwise, demo, ablation) is in the
    parametrisation below."""
    assert len(DEMO_FAMILY) == 4 and len(DEMO_DW) == 4  # M2..M5; M2..M5 depthwise
    assert sorted(BUILT) == configs('**/rtmdet_*.py')


@pytest.mark.parametrize('name', BUILT)
def test_builds_and_trains_a_step_at_rtmdet_strides(name):
    """One forward+backward on two 128x160 images: the neck gives strides 8/16/32 with the head's
    width, every parameter gets a gradient, and the attention-bias tables are not decayed."""
    torch.manual_seed(0)
    cfg = load_config(str(CONFIGS / name))
    model = build_random(cfg)
    model.train()
    packed = demo_mm_inputs(2, [(3, 128, 160)] * 2, num_items=[3, 2],
                            num_classes=cfg.model.bbox_head.num_classes)
    data = model.data_preprocessor(packed, True)
    h, w = data['inputs'].shape[-2:]  # 128x160 padded to the config's divisor
    feats = model.extract_feat(data['inputs'])
    assert [tuple(f.shape[1:]) for f in feats] == [
        (cfg.model.bbox_head.in_channels, -(-h // s), -(-w // s)) for s in (8, 16, 32)]
    decays = train_step_decays(model, data, cfg.optim_wrapper)
    biases = [n for n in decays if n.endswith('attention_biases')]
    assert all(decays[n] == 0 for n in biases)
    assert bool(biases) == (cfg.model.backbone.type == 'EfficientViT')


def test_demo_pair_shares_one_recipe():
    """The demo comparison is fair: ours and RTMDet-tiny differ in backbone, neck and input
    statistics only."""
    ours, tiny = (load_config(str(CONFIGS / n)) for n in (DEMO, DEMO_TINY))
    assert ours.model.backbone.type == 'EfficientViT' and ours.model.backbone.init_cfg is None
    assert tiny.model.backbone.type == 'CSPNeXt' and tiny.model.backbone.get('init_cfg') is None
    assert tiny.model.neck.type == 'CSPNeXtPAFPN'
    for key in ('bbox_head', 'train_cfg', 'test_cfg'):
        assert ours.model[key] == tiny.model[key], key
    assert_same_recipe(ours, tiny)


def test_demo_rtmdet_s_is_mmdets_with_the_tiny_recipe():
    """RTMDet-s on DemoShapes: mmdet's RTMDet-s model widths and depths (its backbone, neck and head
    fields), everything else RTMDet-tiny's demo: data, recipe, head layout, assigner and losses."""
    demo_s, tiny = (load_config(str(CONFIGS / n)) for n in (DEMO_S, DEMO_TINY))
    s = ConfigDict(plain(load_config(S).to_dict()))
    for field in ('deepen_factor', 'widen_factor'):
        assert demo_s.model.backbone[field] == s.model.backbone[field], field
    for field in ('in_channels', 'out_channels', 'num_csp_blocks'):
        assert demo_s.model.neck[field] == s.model.neck[field], field
    for field in ('in_channels', 'feat_channels', 'exp_on_reg'):
        assert demo_s.model.bbox_head[field] == s.model.bbox_head[field], field
    assert demo_s.model.backbone.get('init_cfg') is None  # from scratch, like the tiny demo
    widths = ('deepen_factor', 'widen_factor', 'in_channels', 'out_channels', 'feat_channels')
    for part in ('backbone', 'neck', 'bbox_head'):
        assert ({k: v for k, v in demo_s.model[part].items() if k not in widths}
                == {k: v for k, v in tiny.model[part].items() if k not in widths}), part
    for key in ('data_preprocessor', 'train_cfg', 'test_cfg'):
        assert demo_s.model[key] == tiny.model[key], key
    assert_same_recipe(demo_s, tiny)


@pytest.mark.parametrize('name', DEMO_FAMILY)
def test_demo_family_changes_only_the_arch(name):
    """The M2..M5 demo points are the M0 demo with another arch and the neck reading its widths."""
    ours, member = (load_config(str(CONFIGS / n)) for n in (DEMO, name))
    arch = name.split('_evit_')[1][:2]
    assert member.model.backbone == dict(ours.model.backbone, arch=arch)
    assert member.model.neck == dict(ours.model.neck,
                                     in_channels=EfficientViT.arch_zoo[arch]['embed_dims'])
    for key in ('data_preprocessor', 'bbox_head', 'train_cfg', 'test_cfg'):
        assert member.model[key] == ours.model[key], key
    assert_same_recipe(member, ours)


@pytest.mark.parametrize('name', ABLATIONS)
def test_ablations_change_only_the_bridge(name):
    """An ablation is the shipped demo of its arch (M0's, or the M2..M5 point it names) with another
    neck, other head convs (their kind, depth or sharing) or the backbone's stride-8 map as the
    neck's finest input: data, recipe, backbone weights, assigner, losses and the head's width are
    the demo's."""
    ablation = load_config(str(CONFIGS / name))
    arch = ablation.model.backbone.arch
    ours = load_config(str(CONFIGS / (DEMO if arch == 'm0' else
                                      f'demo/rtmdet_evit_{arch}_demo_shapes.py')))
    assert_same_recipe(ablation, ours)
    for key in ('data_preprocessor', 'train_cfg', 'test_cfg'):
        assert ablation.model[key] == ours.model[key], key
    backbone = {k: v for k, v in ablation.model.backbone.items() if k != 'out_stride8'}
    assert backbone == ours.model.backbone
    assert (ablation.model.neck, ablation.model.bbox_head) != (ours.model.neck, ours.model.bbox_head)
    conv_layout = ('use_depthwise', 'share_conv', 'stacked_convs')
    assert ({k: v for k, v in ablation.model.bbox_head.items() if k not in conv_layout}
            == {k: v for k, v in ours.model.bbox_head.items() if k not in conv_layout})


def dense_spatial_convs(module: nn.Module) -> list:
    """The convs of ``module`` that mix channels over a spatial window (neither depthwise nor 1x1)."""
    return [m for m in module.modules()
            if type(m) is nn.Conv2d and m.kernel_size != (1, 1) and m.groups == 1]


def shared_between_levels(head: nn.Module) -> set:
    """Parameters that the head's first two levels share in their classification convs."""
    first, second = ({id(p) for p in convs.parameters()} for convs in head.cls_convs[:2])
    return first & second


@pytest.mark.parametrize('name', RTMDET_DW + DEMO_DW)
def test_depthwise_variant_changes_only_the_conv_layout(name):
    """A depthwise config is its plain config (same name without ``_dw``) with mmdet's depthwise
    flags and nothing else (recipe, data, backbone, widths); built, its neck and head have no dense
    spatial conv and its head no conv shared between levels, where the plain model has both."""
    base_name = name.replace('_dw_', '_')
    base, dw = (load_config(str(CONFIGS / n)) for n in (base_name, name))
    expected = copy.deepcopy(base.to_dict())
    for part, flags in DEPTHWISE.items():
        assert not base.model[part].get('use_depthwise', False), part
        expected['model'][part].update(flags)
    assert dw.to_dict() == expected
    plain_model, dw_model = (build_random(cfg) for cfg in (base, dw))
    for part in ('neck', 'bbox_head'):
        assert dense_spatial_convs(getattr(plain_model, part)) and \
            not dense_spatial_convs(getattr(dw_model, part)), part
    assert shared_between_levels(plain_model.bbox_head)
    assert not shared_between_levels(dw_model.bbox_head)
