# Mask R-CNN with EfficientViT-M3: the M4 config with this arch, its ImageNet weights and channels.
_base_ = './mask_rcnn_evit_m4_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='m3', init_cfg=dict(checkpoint='efficientvit://efficientvit_m3.pth')),
    neck=dict(in_channels=[128, 240, 320]))
