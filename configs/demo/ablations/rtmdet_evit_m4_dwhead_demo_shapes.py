# Where the depthwise model's accuracy goes (docs/realtime.md): configs/demo/rtmdet_evit_m4_dw_demo_shapes.py
# with the neck's plain convs back, depthwise-separable convs in the head only.
_base_ = '../rtmdet_evit_m4_demo_shapes.py'

model = dict(bbox_head=dict(use_depthwise=True, share_conv=False))
