# RetinaNet with EfficientViT-M4 and EfficientViTFPN, official 1x recipe on COCO 2017.
# Official result (COCO val2017): box AP 32.7 (AP50 52.2, AP75 34.1).
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    './_base_/datasets/coco_detection.py',
    './_base_/evit_1x_recipe.py',
    './_base_/models/efficientvit_m4_fpn.py',
]

model = dict(backbone={{_base_.evit_backbone}}, neck={{_base_.retinanet_neck}})
