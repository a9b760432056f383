"""Analysis: params/FLOPs (``flops``), numeric tolerances (``precision``) and the speed and memory
benchmark library (``benchmark``) behind ``tools/analysis_tools/``; the models they measure are built
by ``models.builders``, shared with ``deployment``."""
