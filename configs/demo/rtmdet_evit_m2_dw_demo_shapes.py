# RTMDet-EfficientViT-M2 on DemoShapes with depthwise-separable convs in the neck's CSP blocks and in the
# head (mmdet's use_depthwise, as in YOLOX-nano and RTMDet's lightest detectors; the head's convs are then
# per level, since RTMDetSepBNHead shares only plain convs): a point of the speed-accuracy front
# (docs/realtime.md).
_base_ = './rtmdet_evit_m2_demo_shapes.py'

model = dict(
    neck=dict(use_depthwise=True),
    bbox_head=dict(use_depthwise=True, share_conv=False))
