"""Deployment: ONNX export and onnxruntime parity checks (``onnx_export``), end-to-end RetinaNet and
RTMDet graphs with in-graph post-processing (``end2end``) and their files with metadata
(``end2end_export``), the one rule by which two runs' detections count as the same (``pairing``),
the metadata stored in exported files (``metadata``), INT8 quantization (``quantize``), mmdeploy's
graph against ours (``mmdeploy_parity``), network inputs read from image folders as deployed
inference reads them (``image_inputs``), models wrapped for tracing (``traceable``: a flat tensor
tuple out) and random weights worth checking an export with (``check_weights``). Inference itself
lives in the torch-free runtime module ``mmdet_efficientvit_runtime``, which this package imports."""
