"""Deployment: ONNX export of backbones and detectors and the onnxruntime parity check."""
