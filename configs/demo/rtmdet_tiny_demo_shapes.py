# mmdet's RTMDet-tiny (CSPNeXt backbone and CSPNeXtPAFPN neck as in
# mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py) trained from scratch with exactly the recipe of
# configs/demo/rtmdet_evit_demo_shapes.py: the reference that the real-time EfficientViT demo is
# measured against (docs/realtime.md).
_base_ = './rtmdet_evit_demo_shapes.py'

model = dict(
    # CSPNeXt's statistics and channel order
    data_preprocessor=dict(
        mean=[103.53, 116.28, 123.675], std=[57.375, 57.12, 58.395], bgr_to_rgb=False,
        pad_size_divisor=32),
    backbone=dict(
        _delete_=True,
        type='CSPNeXt',
        arch='P5',
        expand_ratio=0.5,
        deepen_factor=0.167,
        widen_factor=0.375,
        channel_attention=True,
        norm_cfg={{_base_.norm_cfg}},
        act_cfg=dict(type='SiLU', inplace=True)),
    # EfficientViTPAFPN is a CSPNeXtPAFPN over one more map: the same settings, CSPNeXt's channels
    neck=dict(type='CSPNeXtPAFPN', in_channels=[96, 192, 384]))
