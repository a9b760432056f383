"""Analysis: params/FLOPs (``flops``), numeric tolerances (``precision``), the speed and memory
benchmark library (``benchmark``) and the speed-accuracy front over trained demo configs (``front``,
with the mAP that INT8 costs each run's end-to-end graph: ``int8_accuracy``) behind
``tools/analysis_tools/``; the models they measure are built by ``models.builders``, shared with
``deployment``."""
