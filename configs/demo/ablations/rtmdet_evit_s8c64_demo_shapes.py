# Stride-bridge ablation (docs/realtime.md): configs/demo/rtmdet_evit_demo_shapes.py with a wider
# transposed-conv stride-8 map in EfficientViTPAFPN (64 channels, the stride-16 map's width, instead of
# half of it).
_base_ = '../rtmdet_evit_demo_shapes.py'

model = dict(neck=dict(stride8_channels=64))
