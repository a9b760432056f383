# Mask R-CNN with EfficientViT-M4 and EfficientViTFPN, official 1x recipe on COCO 2017.
# Official result (COCO val2017): box AP 32.8, mask AP 31.0.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/datasets/coco_instance.py',
    './_base_/evit_1x_recipe.py',
    './_base_/models/efficientvit_m4_fpn.py',
]

model = dict(backbone={{_base_.evit_backbone}}, neck={{_base_.mask_rcnn_neck}})
