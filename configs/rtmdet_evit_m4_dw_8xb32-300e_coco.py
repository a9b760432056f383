# RTMDet-EfficientViT-M4 with depthwise-separable convs in the neck's CSP blocks and in the head (mmdet's
# use_depthwise, as in YOLOX-nano and RTMDet's lightest detectors; the head's convs are then per level,
# since RTMDetSepBNHead shares only plain convs): the design that moved the speed-accuracy front on
# DemoShapes (docs/realtime.md). Everything else is the M4 config: its recipe, backbone and widths.
_base_ = './rtmdet_evit_m4_8xb32-300e_coco.py'

model = dict(
    neck=dict(use_depthwise=True),
    bbox_head=dict(use_depthwise=True, share_conv=False))
