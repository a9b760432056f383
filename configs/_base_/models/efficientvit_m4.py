# EfficientViT-M4 (ImageNet weights) as every detector config here uses it, defined once: the RetinaNet
# and Mask R-CNN configs through efficientvit_m4_fpn.py (`model = dict(backbone={{_base_.evit_backbone}})`),
# the RTMDet configs with their arch and norm_eval (`backbone=dict(_base_.evit_backbone, arch=...)`).
evit_backbone = dict(
    _delete_=True,
    type='EfficientViT',
    arch='m4',
    out_indices=(0, 1, 2),  # strides 16, 32, 64
    frozen_stages=-1,
    norm_eval=True,
    # the official ImageNet checkpoint (mmdet_efficientvit.model_zoo resolves the URL)
    init_cfg=dict(type='Pretrained', checkpoint='efficientvit://efficientvit_m4.pth'))
