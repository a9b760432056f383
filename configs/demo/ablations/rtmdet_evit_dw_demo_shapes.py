# Stride-bridge ablation (docs/realtime.md): configs/demo/rtmdet_evit_demo_shapes.py with depthwise
# separable convs in the neck's CSP blocks and in the head (mmdet's use_depthwise, as RTMDet's
# lightest detectors do), a third of the FLOPs. The head's convs are then per level: RTMDetSepBNHead
# shares only plain convs between levels.
_base_ = '../rtmdet_evit_demo_shapes.py'

model = dict(
    neck=dict(use_depthwise=True),
    bbox_head=dict(use_depthwise=True, share_conv=False))
