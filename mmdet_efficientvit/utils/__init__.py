"""Helpers shared by the analysis and deployment tools (FLOPs, speed, ONNX export)."""
