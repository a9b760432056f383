# Real-time RTMDet + EfficientViT-M0 trained from scratch on DemoShapes on a 2-core CPU
# (`make demo-realtime`): the model of configs/rtmdet_evit_m0_8xb32-300e_coco.py (EfficientViTPAFPN stride
# bridge, RTMDet-tiny's head, assigner and losses, EMA) with the demos' shared data and short recipe
# instead of COCO's 300-epoch one, plain BatchNorm (one process) and no ImageNet weights (offline).
# configs/demo/rtmdet_tiny_demo_shapes.py trains mmdet's RTMDet-tiny with exactly this recipe.
_base_ = './_base_/demo_shapes_cpu.py'

neck_channels = 96
norm_cfg = dict(type='BN')
model = dict(
    type='RTMDet',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=64,
        batch_augments=None),
    backbone=dict(
        type='EfficientViT',
        arch='m0',
        out_indices=(0, 1, 2),
        norm_eval=False,
        init_cfg=None),  # from scratch: no ImageNet weights offline
    neck=dict(
        type='EfficientViTPAFPN',
        in_channels=[64, 128, 192],
        out_channels=neck_channels,
        num_csp_blocks=1,
        expand_ratio=0.5,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='SiLU', inplace=True)),
    bbox_head=dict(
        type='RTMDetSepBNHead',
        num_classes={{_base_.num_classes}},
        in_channels=neck_channels,
        stacked_convs=2,
        feat_channels=neck_channels,
        anchor_generator=dict(type='MlvlPointGenerator', offset=0, strides=[8, 16, 32]),
        bbox_coder=dict(type='DistancePointBBoxCoder'),
        loss_cls=dict(type='QualityFocalLoss', use_sigmoid=True, beta=2.0, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        with_objectness=False,
        exp_on_reg=False,
        share_conv=True,
        pred_kernel_size=1,
        norm_cfg=norm_cfg,
        act_cfg=dict(type='SiLU', inplace=True)),
    train_cfg=dict(
        assigner=dict(type='DynamicSoftLabelAssigner', topk=13),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.001,
        nms=dict(type='nms', iou_threshold=0.65),
        max_per_img=100))

custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, update_buffers=True,
         priority=49),
    dict(type='SkippedImagesHook'),
]
