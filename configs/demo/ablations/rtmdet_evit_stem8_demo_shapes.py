# Stride-bridge ablation (docs/realtime.md): configs/demo/rtmdet_evit_demo_shapes.py with the stride-8 map
# taken from the backbone's patch embed (its third stride-2 conv, 32 channels for M0) instead of a
# transposed conv of the stride-16 map.
_base_ = '../rtmdet_evit_demo_shapes.py'

model = dict(
    backbone=dict(out_stride8=True),
    neck=dict(in_channels=[32, 64, 128, 192]))
