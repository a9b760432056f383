"""Deployment: ONNX export and onnxruntime parity checks (``onnx_export``), end-to-end RetinaNet and
RTMDet graphs with in-graph post-processing (``end2end``), the one rule by which two runs' detections
count as the same (``pairing``), the metadata stored in exported files (``metadata``), INT8
quantization (``quantize``), mmdeploy's graph against ours (``mmdeploy_parity``) and access to the
standalone ``tools/deployment/onnx_inference.py`` (``inference_tool``)."""
