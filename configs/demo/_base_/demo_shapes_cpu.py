# What the CPU demos (`make demo`, `make demo-realtime`) share: the synthetic DemoShapes dataset
# (mmdet_efficientvit/datasets/demo_shapes.py) at 256 px and one short from-scratch training recipe.
# Data: mmdet's COCO dataset with these classes, images resized to 256 (keeping the ratio) and flipped,
# COCO bbox evaluation on the val split. Recipe, sized to train and evaluate on a 2-core CPU in minutes:
# 10 epochs of AdamW at lr 2e-3 with gradient clipping, a short warm-up and a cosine decay, validation
# only at the end.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)

# Must match DEMO_SHAPES_CLASSES and the generator call in tools/run_demo.sh.
classes = ('rectangle', 'ellipse', 'triangle', 'star')
num_classes = len(classes)
img_size = 256
data_root = 'data/demo_shapes/'

# LoadImageFromFileOrSkip: an unreadable training image is skipped and reported (the demo recipes'
# SkippedImagesHook), not fatal.
train_pipeline = [
    dict(type='LoadImageFromFileOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,  # decoding 256 px JPEGs is cheap; leave the second core to the model
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'val.json')
test_evaluator = val_evaluator

# The model parts of the RetinaNet and Mask R-CNN demos (referenced as {{_base_.demo_backbone}} and
# {{_base_.demo_neck}}): EfficientViT-M0 from scratch (no ImageNet weights offline) and the official
# neck at 64 channels with strides 8, 16, 32, 64 (objects are 14-128 px); each replaces its base's.
demo_neck_channels = 64
demo_backbone = dict(
    _delete_=True,
    type='EfficientViT',
    arch='m0',
    window_size=(7, 7, 7),
    out_indices=(0, 1, 2),
    norm_eval=False,
    init_cfg=None)
demo_neck = dict(
    _delete_=True,
    type='EfficientViTFPN',
    in_channels=[64, 128, 192],
    out_channels=demo_neck_channels,
    start_level=0,
    num_extra_trans_convs=1,
    num_outs=4)

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, betas=(0.9, 0.999), weight_decay=0.05),
    # bypass_duplicate: RTMDet's head shares its convs between levels
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}, bypass_duplicate=True),
    clip_grad=dict(max_norm=10, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=0, end=max_epochs,
         convert_to_iter_based=True),
]

default_hooks = dict(
    logger=dict(interval=20),
    # mmengine's CheckpointHook, written atomically (a run killed while saving still resumes)
    checkpoint=dict(type='AtomicCheckpointHook', interval=max_epochs, max_keep_ckpts=1))
custom_hooks = [dict(type='SkippedImagesHook')]
log_processor = dict(window_size=20)
randomness = dict(seed=0)
