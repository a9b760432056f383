# Mask R-CNN + EfficientViT-M0 + EfficientViTFPN trained from scratch on DemoShapes (exact polygon masks)
# on a 2-core CPU (`make demo-mask`): mmdet's Mask R-CNN (RPN, RoIAlign, box and mask heads) as in
# configs/mask_rcnn_evit_m0_fpn_1x_coco.py, with the demos' shared data and short recipe, boxes and
# masks evaluated. Differences from the COCO model, all because this trains from scratch on small
# images on a CPU: 256 px images, the RetinaNet demo's neck (64 channels, strides 8-64: objects are
# 14-128 px) with anchors to match, 64-channel heads (256-d box fcs, 2 mask convs), fewer RoIs
# (RoIAlign with 2x2 samples per bin), BatchNorm in train mode, no ImageNet weights. About 2.5x the
# RetinaNet demo's time per iteration.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', './_base_/demo_shapes_cpu.py']

neck_channels = {{_base_.demo_neck_channels}}
num_classes = {{_base_.num_classes}}
img_size = {{_base_.img_size}}
strides = [8, 16, 32, 64]
roi_layer = dict(type='RoIAlign', sampling_ratio=2)

model = dict(
    data_preprocessor=dict(pad_size_divisor=64),
    backbone={{_base_.demo_backbone}},
    neck={{_base_.demo_neck}},  # strides 8, 16, 32, 64
    rpn_head=dict(
        in_channels=neck_channels,
        feat_channels=neck_channels,
        anchor_generator=dict(scales=[2], strides=strides)),  # 16-128 px anchors
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=roi_layer, out_channels=neck_channels,
                                featmap_strides=strides),
        bbox_head=dict(in_channels=neck_channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(roi_layer=roi_layer, out_channels=neck_channels,
                                featmap_strides=strides),
        mask_head=dict(num_convs=2, in_channels=neck_channels, conv_out_channels=neck_channels,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(sampler=dict(num=32))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=50)))

# The shared pipelines with the objects' polygons (PolygonMasks: cheap to resize and flip).
train_pipeline = [
    dict(type='LoadImageFromFileOrSkip'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_evaluator = dict(metric=['bbox', 'segm'])
test_evaluator = val_evaluator
