"""Deployment: ONNX export and onnxruntime parity checks (``onnx_export``), end-to-end RetinaNet and
RTMDet graphs with in-graph post-processing (``end2end``), the metadata stored in exported files
(``metadata``), INT8 quantization (``quantize``) and access to the standalone
``tools/deployment/onnx_inference.py`` (``inference_tool``)."""
