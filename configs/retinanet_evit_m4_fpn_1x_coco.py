# RetinaNet with EfficientViT-M4 and EfficientViTFPN, official 1x recipe on COCO 2017.
# Official result (COCO val2017): box AP 32.7 (AP50 52.2, AP75 34.1).
# The other RetinaNet configs inherit this one and change only the arch, its checkpoint and channels.
_base_ = [
    'mmdet::_base_/models/retinanet_r50_fpn.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/evit_1x_recipe.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientViT',
        arch='m4',
        out_indices=(0, 1, 2),  # strides 16, 32, 64
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/'
            'releases/download/v1.0/efficientvit_m4.pth')),
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        start_level=0,
        add_extra_convs='on_input',
        num_outs=5,
        num_extra_trans_convs=1))  # outputs at strides 8, 16, 32, 64, 128
