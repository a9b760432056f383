"""The end-to-end ONNX file of a detector: its graph (``end2end``) exported with dynamic batch,
height and width, and the metadata that deployed inference needs (``metadata``). ``export_onnx.py
--end2end`` and the speed-accuracy front's INT8 accuracy step write their files with this."""
from typing import Optional, Tuple

import torch
import torch.nn as nn

from ..resources import load_config
from .end2end import End2EndModule, wrap_end2end
from .metadata import deploy_metadata, write_metadata
from .onnx_export import DEFAULT_OPSET, export_onnx


def export_end2end_onnx(detector: nn.Module, config: str, checkpoint: Optional[str], out: str,
                        shape: Tuple[int, int], opset: int = DEFAULT_OPSET,
                        cfg_options: Optional[dict] = None) -> End2EndModule:
    """Export ``detector`` (built from ``config`` with ``cfg_options``, weights from ``checkpoint``
    or random without one; deployed or not, as given) with its post-processing to ``out``, traced
    at ``shape`` (H, W), and store its metadata; returns the wrapped module that was exported.

    The metadata is made first, so a config the runtime cannot reproduce fails before the export."""
    model = wrap_end2end(detector).eval()
    cfg = load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    dataset_meta = detector.dataset_meta if checkpoint else None
    metadata = deploy_metadata(cfg, config, checkpoint, dataset_meta, model.num_classes,
                               model.test_cfg, model.OUTPUT_CONVENTION)
    names = list(model.OUTPUT_NAMES)
    export_onnx(model, out, torch.randn(1, 3, *shape), names, opset=opset,
                output_axes={name: {0: 'batch'} for name in names})
    write_metadata(out, metadata)
    return model
