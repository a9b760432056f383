# Real-time RTMDet with EfficientViT-M0: mmdet's RTMDet-tiny recipe (640x640, CachedMosaic + CachedMixUp,
# AdamW lr 0.004, flat then cosine, EMA, a lighter pipeline for the last 20 epochs via
# PipelineSwitchHook, 8 GPUs x 32 images, 300 epochs) with the backbone swapped in the way mmdet's
# rtmdet_l_swin_b swaps in Swin. EfficientViT's strides 16/32/64 reach RTMDet's 8/16/32 through
# EfficientViTPAFPN (CSPNeXtPAFPN over a transposed-conv stride-8 map and the three backbone maps).
# The M1-M5 configs inherit this one and change the arch, its checkpoint and in_channels.
_base_ = ['mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py', './_base_/models/efficientvit_m4.py']

# Registers EfficientViT, the necks, LoadImageFromFileOrSkip and the hooks used below.
custom_imports = dict(imports=['mmdet_efficientvit'], allow_failed_imports=False)

neck_channels = 96  # RTMDet-tiny's width
model = dict(
    # EfficientViT's ImageNet weights expect RGB with ImageNet statistics (CSPNeXt's: BGR)
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _base_.evit_backbone,
        arch='m0',
        norm_eval=False,  # RTMDet trains every BatchNorm (32 images per GPU)
        init_cfg=dict(type='Pretrained', checkpoint='efficientvit://efficientvit_m0.pth')),
    neck=dict(
        _delete_=True,
        type='EfficientViTPAFPN',  # strides 8 (transposed conv), 16, 32 from 16, 32, 64
        in_channels=[64, 128, 192],
        out_channels=neck_channels,
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=dict(type='SyncBN'),
        act_cfg=dict(type='SiLU', inplace=True)),
    bbox_head=dict(in_channels=neck_channels, feat_channels=neck_channels),
    # RetinaNet's per-level top 1000 instead of RTMDet's 30000 (pairs of point and class): the
    # same demo mAP, 10% less end-to-end latency at 640x640 (docs/realtime.md)
    test_cfg=dict(nms_pre=1000))

# RTMDet-tiny's pipelines with LoadImageFromFileOrSkip: an unreadable training image is skipped (and
# counted by SkippedImagesHook) instead of ending the run.
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFileOrSkip', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='CachedMosaic', img_scale=(640, 640), pad_val=114.0, max_cached_images=20,
         random_pop=False),
    dict(type='RandomResize', scale=(1280, 1280), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(640, 640)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(type='CachedMixUp', img_scale=(640, 640), ratio_range=(1.0, 1.0), max_cached_images=10,
         random_pop=False, pad_val=(114, 114, 114), prob=0.5),
    dict(type='PackDetInputs'),
]
train_pipeline_stage2 = [
    dict(type='LoadImageFromFileOrSkip', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=(640, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(640, 640)),
    dict(type='YOLOXHSVRandomAug'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Pad', size=(640, 640), pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# RTMDet's AdamW already exempts norms and biases from weight decay; so are the attention-bias tables.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}))

max_epochs = 300
stage2_num_epochs = 20
# mmengine's CheckpointHook, written atomically (a run killed while saving still resumes)
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
    dict(type='PipelineSwitchHook', switch_epoch=max_epochs - stage2_num_epochs,
         switch_pipeline=train_pipeline_stage2),
    dict(type='SkippedImagesHook'),
]
