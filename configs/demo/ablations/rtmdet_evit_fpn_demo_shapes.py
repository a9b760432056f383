# Stride-bridge ablation (docs/realtime.md): configs/demo/rtmdet_evit_demo_shapes.py with the official
# EfficientViT detection neck in place of EfficientViTPAFPN: EfficientViTFPN at RTMDet's width, one
# transposed-conv level below the stride-16 map, outputs at strides 8/16/32 (the stride-64 map only
# feeds the top-down sum). Same data, recipe and head.
_base_ = '../rtmdet_evit_demo_shapes.py'

model = dict(
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[64, 128, 192],
        out_channels={{_base_.neck_channels}},
        num_outs=3,
        num_extra_trans_convs=1))
