# Where the depthwise M4's accuracy goes (docs/realtime.md): configs/demo/rtmdet_evit_m4_demo_shapes.py
# with depthwise-separable convs in the head only (per level: RTMDetSepBNHead shares only plain convs);
# configs/demo/rtmdet_evit_m4_dw_demo_shapes.py makes the neck's CSP blocks depthwise too.
_base_ = '../rtmdet_evit_m4_demo_shapes.py'

model = dict(bbox_head=dict(use_depthwise=True, share_conv=False))
