# RTMDet with EfficientViT-M3: the M0 config with this arch, its ImageNet weights and channels.
_base_ = './rtmdet_evit_m0_8xb32-300e_coco.py'

model = dict(
    backbone=dict(arch='m3', init_cfg=dict(checkpoint='efficientvit://efficientvit_m3.pth')),
    neck=dict(in_channels=[128, 240, 320]))
