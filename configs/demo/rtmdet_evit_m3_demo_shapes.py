# RTMDet-EfficientViT-M3 on DemoShapes: configs/demo/rtmdet_evit_demo_shapes.py (M0) with the M3
# backbone and the neck reading its widths, as configs/rtmdet_evit_m3_8xb32-300e_coco.py changes M0's
# COCO config; one point of the speed-accuracy front (docs/realtime.md).
_base_ = './rtmdet_evit_demo_shapes.py'

model = dict(backbone=dict(arch='m3'), neck=dict(in_channels=[128, 240, 320]))
