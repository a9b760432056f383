# EfficientViT-M4 (efficientvit_m4.py) and EfficientViTFPN as the official detectors use them, defined
# once for the RetinaNet and Mask R-CNN configs (`model = dict(backbone={{_base_.evit_backbone}}, ...)`).
# The M0-M3 and M5 configs inherit the M4 ones and change the arch, its checkpoint and in_channels.
_base_ = './efficientvit_m4.py'

# RetinaNet: one transposed-conv level below stride 16, stride-2 convs on the last map: strides 8-128.
retinanet_neck = dict(
    _delete_=True,
    type='EfficientViTFPN',
    in_channels=[128, 256, 384],
    out_channels=256,
    start_level=0,
    add_extra_convs='on_input',
    num_outs=5,
    num_extra_trans_convs=1)
# Mask R-CNN: two transposed-conv levels and a max-pooled top level: strides 4-64.
mask_rcnn_neck = dict(retinanet_neck, add_extra_convs=False, num_extra_trans_convs=2)
