# mmdet's RTMDet-s (mmdet::rtmdet/rtmdet_s_8xb32-300e_coco.py: CSPNeXt at deepen 0.33 / widen 0.5, the
# neck from 128/256/512 to 128 channels, the head at 128) trained from scratch with exactly the recipe
# of configs/demo/rtmdet_tiny_demo_shapes.py: the larger reference of the speed-accuracy front
# (docs/realtime.md).
_base_ = './rtmdet_tiny_demo_shapes.py'

neck_channels = 128
model = dict(
    backbone=dict(deepen_factor=0.33, widen_factor=0.5),
    neck=dict(in_channels=[128, 256, 512], out_channels=neck_channels),
    bbox_head=dict(in_channels=neck_channels, feat_channels=neck_channels))
