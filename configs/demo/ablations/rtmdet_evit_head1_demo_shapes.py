# Head-depth ablation (docs/realtime.md): configs/demo/rtmdet_evit_demo_shapes.py with one shared 3x3
# conv per branch in RTMDetSepBNHead instead of RTMDet-tiny's two. The stride-8 head convs are over
# half of the real-time M0's onnxruntime time at 640x640; this halves them.
_base_ = '../rtmdet_evit_demo_shapes.py'

model = dict(bbox_head=dict(stacked_convs=1))
