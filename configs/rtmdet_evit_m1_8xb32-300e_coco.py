# RTMDet with EfficientViT-M1: the M0 config with this arch, its ImageNet weights and channels.
_base_ = './rtmdet_evit_m0_8xb32-300e_coco.py'

model = dict(
    backbone=dict(arch='m1', init_cfg=dict(checkpoint='efficientvit://efficientvit_m1.pth')),
    neck=dict(in_channels=[128, 144, 192]))
