"""Shared fixtures-as-functions for the neck, config and tool tests: tiny generated data, a tiny
training config derived from the real RetinaNet config, and the official checkpoint key layout."""
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'


# --------------------------------------------------------------------------- official key layout
def official_neck_shapes(in_channels: Sequence[int], out: int, num_extra_trans_convs: int,
                         num_extra_convs: int) -> Dict[str, Tuple[int, ...]]:
    """The official downstream neck's parameters (written from its published layout: ConvModule
    children named ``conv``; 1x1 laterals, 3x3 outputs, extra stride-2 convs appended to
    ``fpn_convs`` (the first reading the last backbone map), 2x2 ConvTranspose2d in
    ``extra_trans_convs`` (weight in x out x k x k) and their 3x3 ``extra_fpn_convs``; all biased)."""
    shapes = {}
    for i, c in enumerate(in_channels):
        shapes[f'lateral_convs.{i}.conv.weight'] = (out, c, 1, 1)
        shapes[f'lateral_convs.{i}.conv.bias'] = (out,)
        shapes[f'fpn_convs.{i}.conv.weight'] = (out, out, 3, 3)
        shapes[f'fpn_convs.{i}.conv.bias'] = (out,)
    for j in range(num_extra_convs):
        i = len(in_channels) + j
        shapes[f'fpn_convs.{i}.conv.weight'] = (out, in_channels[-1] if j == 0 else out, 3, 3)
        shapes[f'fpn_convs.{i}.conv.bias'] = (out,)
    for i in range(num_extra_trans_convs):
        shapes[f'extra_trans_convs.{i}.conv.weight'] = (out, out, 2, 2)
        shapes[f'extra_trans_convs.{i}.conv.bias'] = (out,)
        shapes[f'extra_fpn_convs.{i}.conv.weight'] = (out, out, 3, 3)
        shapes[f'extra_fpn_convs.{i}.conv.bias'] = (out,)
    return shapes


def _conv(shapes: dict, name: str, out: int, cin: int, k: int) -> None:
    shapes[f'{name}.weight'] = (out, cin, k, k)
    shapes[f'{name}.bias'] = (out,)


def official_retinanet_head_shapes(num_classes: int = 80, c: int = 256, anchors: int = 9) -> dict:
    """mmdet (2.x and 3.x) RetinaHead: 4 cls and 4 reg ConvModules, then retina_cls/retina_reg."""
    shapes = {}
    for i in range(4):
        _conv(shapes, f'cls_convs.{i}.conv', c, c, 3)
        _conv(shapes, f'reg_convs.{i}.conv', c, c, 3)
    _conv(shapes, 'retina_cls', anchors * num_classes, c, 3)
    _conv(shapes, 'retina_reg', anchors * 4, c, 3)
    return shapes


def official_mask_rcnn_head_shapes(num_classes: int = 80, c: int = 256) -> dict:
    """mmdet Mask R-CNN heads: RPNHead, Shared2FCBBoxHead (7x7 RoIs, 1024-d fcs), FCNMaskHead."""
    shapes = {}
    _conv(shapes, 'rpn_head.rpn_conv', c, c, 3)
    _conv(shapes, 'rpn_head.rpn_cls', 3, c, 1)
    _conv(shapes, 'rpn_head.rpn_reg', 12, c, 1)
    fc = {'shared_fcs.0': (1024, c * 7 * 7), 'shared_fcs.1': (1024, 1024),
          'fc_cls': (num_classes + 1, 1024), 'fc_reg': (num_classes * 4, 1024)}
    for name, (o, i) in fc.items():
        shapes[f'roi_head.bbox_head.{name}.weight'] = (o, i)
        shapes[f'roi_head.bbox_head.{name}.bias'] = (o,)
    for i in range(4):
        _conv(shapes, f'roi_head.mask_head.convs.{i}.conv', c, c, 3)
    shapes['roi_head.mask_head.upsample.weight'] = (c, c, 2, 2)  # ConvTranspose2d: in, out, k, k
    shapes['roi_head.mask_head.upsample.bias'] = (c,)
    _conv(shapes, 'roi_head.mask_head.conv_logits', num_classes, c, 1)
    return shapes


def official_bias_idxs(r: int) -> torch.Tensor:
    """The official ``attention_bias_idxs`` buffer of an r x r window: entry (p, q) is the index of
    the offset (|dy|, |dx|) between points p and q, offsets numbered in order of first appearance."""
    points = [(y, x) for y in range(r) for x in range(r)]
    offsets, idxs = {}, []
    for p in points:
        for q in points:
            off = (abs(p[0] - q[0]), abs(p[1] - q[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    return torch.tensor(idxs).view(r * r, r * r)


def mmdet2_meta(classes: Sequence[str]) -> dict:
    """The ``meta`` of an mmdet 2.x training checkpoint, as in the official releases."""
    return dict(mmdet_version='2.28.2', CLASSES=tuple(classes), epoch=12, iter=87960,
                config='# mmdet 2.x config text', env_info='', seed=0, exp_name='x.py', hook_msgs={})


# --------------------------------------------------------------------------- weights
@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights, BN affine/statistics and attention biases (unit-scale activations)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.dim() == 4:
            p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
        elif name.endswith('bn.weight'):
            p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
        else:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    for name, b in model.named_buffers():
        if name.endswith('running_mean'):
            b.copy_(torch.randn(b.shape, generator=g) * 0.1)
        elif name.endswith('running_var'):
            b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


# --------------------------------------------------------------------------- data
def write_coco_split(root: Path, split: str, classes: Sequence[str], num_images: int = 2,
                     size: Tuple[int, int] = (96, 64), seed: int = 0) -> Path:
    """Write ``root/annotations/instances_<split>.json`` and ``root/<split>/*.jpg`` in COCO's layout:
    every class listed (ids 1..N), each image showing 1-3 flat rectangles of the first classes."""
    rng = np.random.default_rng(seed)
    (root / 'annotations').mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    w, h = size
    images, annotations = [], []
    for i in range(num_images):
        img = np.full((h, w, 3), 40, np.uint8)
        for _ in range(rng.integers(1, 4)):
            bw, bh = int(rng.integers(w // 5, w // 2)), int(rng.integers(h // 5, h // 2))
            x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
            label = int(rng.integers(0, 3))
            img[y:y + bh, x:x + bw] = (60 * label + 90, 200, 255 - 60 * label)
            annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=label + 1,
                                    bbox=[x, y, bw, bh], area=bw * bh,
                                    iscrowd=0, segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]))
        name = f'{i:012d}.jpg'
        cv2.imwrite(str(root / split / name), img)
        images.append(dict(id=i + 1, file_name=name, width=w, height=h))
    categories = [dict(id=k + 1, name=c, supercategory='thing') for k, c in enumerate(classes)]
    ann = root / 'annotations' / f'instances_{split}.json'
    ann.write_text(json.dumps(dict(images=images, annotations=annotations, categories=categories)))
    return ann


def tiny_config(path: Path, data_root: Path, max_epochs: int = 1, val_interval: int = 1,
                img_size: Tuple[int, int] = (128, 96), batch_size: int = 2,
                backbone_init_cfg: Optional[dict] = None) -> Path:
    """A config that inherits the real RetinaNet-M0 COCO config and shrinks it for a CPU test on
    DemoShapes data: random init (unless ``backbone_init_cfg``), 32-channel neck/head, small images,
    no flip (so an interrupted and an uninterrupted run see identical batches), a short warm-up and
    an LR step at epoch 1."""
    path.write_text(f"""
_base_ = {str(CONFIGS / 'retinanet_evit_m0_fpn_1x_coco.py')!r}
classes = ('rectangle', 'ellipse', 'triangle', 'star')
data_root = {str(data_root) + '/'!r}
model = dict(
    backbone=dict(init_cfg={backbone_init_cfg!r}),
    neck=dict(out_channels=32),
    bbox_head=dict(num_classes=4, in_channels=32, feat_channels=32, stacked_convs=1),
    # an untrained head scores below mmdet's 0.05 threshold; keep every box so COCO eval has input
    test_cfg=dict(score_thr=0.0, nms_pre=100, max_per_img=20))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale={img_size!r}, keep_ratio=True),
    dict(type='PackDetInputs')]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={img_size!r}, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
train_dataloader = dict(
    batch_size={batch_size}, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True, min_size=4),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs={max_epochs}, val_interval={val_interval})
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=4),
    dict(type='MultiStepLR', begin=0, end={max_epochs}, by_epoch=True, milestones=[1], gamma=0.1)]
default_hooks = dict(logger=dict(interval=1), visualization=dict(draw=False))
log_processor = dict(window_size=1)
randomness = dict(seed=0)
""")
    return path


def mmdet_predictions(cfg: str, ckpt: str, paths: Sequence[str]) -> List[dict]:
    """mmdet's own pipeline on image files (file -> test pipeline -> preprocessor -> predict,
    rescaled to the image): the reference of the no-PyTorch inference tool."""
    from mmdet.apis import inference_detector, init_detector
    model = init_detector(cfg, ckpt, device='cpu')
    out = []
    for path in paths:
        pred = inference_detector(model, path).pred_instances
        out.append(dict(bboxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                        labels=pred.labels.numpy()))
    return out


# --------------------------------------------------------------------------- running the tools
def write_distributions(site: Path, dists: Dict[str, str]) -> Path:
    """Installed-distribution records (``<name>-<version>.dist-info`` with METADATA and top_level.txt),
    as pip writes them, for ``{name: version}`` of the MM libraries; no code. Returns ``site``."""
    for name, version in dists.items():
        info = site / f'{name.replace("-", "_")}-{version}.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        module = next(m for m in ('mmengine', 'mmdeploy', 'mmdet', 'mmcv') if m in name)
        (info / 'top_level.txt').write_text(f'{module}\n')
    return site


def tool_env(**extra: str) -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(REPO) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')  # 2 shared cores; also keeps CPU runs deterministic
    env.update(extra)
    return env


# the torch-free runtime: one file at the repository root, a top-level module of the wheel
RUNTIME = REPO / 'mmdet_efficientvit_runtime.py'


def load_tool(relpath: str):
    """Import a script under ``tools/`` (not a package) as a module, e.g. ``load_tool('demo.py')``."""
    path = REPO / 'tools' / relpath
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(args: Sequence[str], cwd: Path = REPO, timeout: float = 300,
             **env: str) -> subprocess.CompletedProcess:
    """Run ``python tools/<args>`` (or a shell script when args[0] ends in .sh)."""
    script = str(REPO / 'tools' / args[0])
    cmd = ['bash', script] if script.endswith('.sh') else [sys.executable, script]
    return subprocess.run(cmd + [str(a) for a in args[1:]], cwd=cwd,
                          env=tool_env(PYTHON=sys.executable, **env), capture_output=True, text=True,
                          timeout=timeout)


def error_line(capsys, main, argv: Sequence[str]) -> str:
    """The one ``error: ...`` line that a tool's ``main(argv)`` prints before exiting with 1."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train_step_decays(model: nn.Module, data: dict, optim_wrapper: dict) -> Dict[str, float]:
    """One loss and backward pass (finite and positive, every trainable parameter gets a gradient),
    then each parameter's weight decay in the optimizer that ``optim_wrapper`` builds."""
    from mmengine.optim import build_optim_wrapper
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = build_optim_wrapper(model, optim_wrapper).optimizer
    return {names[id(p)]: g['weight_decay'] for g in optimizer.param_groups for p in g['params']}


def build_random(cfg) -> nn.Module:
    """The config's model in training mode with mmdet's initialisers, the backbone's checkpoint
    dropped (nothing downloaded)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model
