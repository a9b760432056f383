"""Analysis: models built for measuring (``builders``), params/FLOPs (``flops``) and the speed and
memory benchmark library (``benchmark``) behind ``tools/analysis_tools/``."""
