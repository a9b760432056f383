# RTMDet-EfficientViT-M5 on DemoShapes: configs/demo/rtmdet_evit_demo_shapes.py (M0) with the M5
# backbone and the neck reading its widths, as configs/rtmdet_evit_m5_8xb32-300e_coco.py changes M0's
# COCO config; one point of the speed-accuracy front (docs/realtime.md).
_base_ = './rtmdet_evit_demo_shapes.py'

model = dict(backbone=dict(arch='m5'), neck=dict(in_channels=[192, 288, 384]))
