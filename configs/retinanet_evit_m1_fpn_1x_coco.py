# RetinaNet with EfficientViT-M1: the M4 config with this arch, its ImageNet weights and channels.
_base_ = './retinanet_evit_m4_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='m1', init_cfg=dict(checkpoint='efficientvit://efficientvit_m1.pth')),
    neck=dict(in_channels=[128, 144, 192]))
