# Mask R-CNN with EfficientViT-M5: the M4 config with this arch, its ImageNet weights and channels.
_base_ = './mask_rcnn_evit_m4_fpn_1x_coco.py'

model = dict(
    backbone=dict(arch='m5', init_cfg=dict(checkpoint='efficientvit://efficientvit_m5.pth')),
    neck=dict(in_channels=[192, 288, 384]))
