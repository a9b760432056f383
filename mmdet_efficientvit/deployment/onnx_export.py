"""Export models to ONNX with dynamic batch/height/width and check onnxruntime against PyTorch.

The TorchScript-based exporter (``dynamo=False``) is used: it records the shape arithmetic of the
window attention (padding amounts, window counts) as graph ops, so one graph serves every input size.
Python-level branches are fixed at export time: the graph keeps the branch taken by the export
input, so the export size must use window partitioning in every stage (every stage map larger than
its window on at least one side), as detection inputs do.
"""
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

DEFAULT_OPSET = 17


def export_onnx(model: nn.Module,
                path: str,
                sample: torch.Tensor,
                output_names: Optional[Sequence[str]] = None,
                opset: int = DEFAULT_OPSET) -> str:
    """Export ``model(sample)`` to ``path`` with dynamic batch, height and width; return the path."""
    model = model.eval()
    with torch.no_grad():
        outputs = model(sample)
    num_outputs = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    output_names = list(output_names or [f'output{i}' for i in range(num_outputs)])
    if len(output_names) != num_outputs:
        raise ValueError(f'{len(output_names)} output names given for {num_outputs} outputs')
    dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
    dynamic_axes.update({name: {0: 'batch', 2: f'{name}_h', 3: f'{name}_w'} for name in output_names})
    with warnings.catch_warnings():
        # The tracer warns about every Python bool it sees; the module docstring says why it is fine.
        warnings.filterwarnings('ignore', category=torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', message='.*legacy TorchScript-based ONNX export.*')
        warnings.filterwarnings('ignore', category=DeprecationWarning)
        warnings.filterwarnings('ignore', category=FutureWarning)
        torch.onnx.export(
            model, (sample, ), path, dynamo=False, opset_version=opset, input_names=['input'],
            output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    return path


def ort_session(path: str, threads: int = 0):
    """An onnxruntime CPU session; ``threads=0`` lets onnxruntime choose."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def check_onnx(path: str, model: nn.Module, inputs: List[torch.Tensor], atol: float = 1e-4,
               session=None) -> List[Dict]:
    """Run the ONNX graph and ``model`` on each input; raise if any output differs by more than atol.

    Returns one record per input: ``dict(shape, max_abs_diff, max_abs_ref)``.
    """
    session = session or ort_session(path)
    records = []
    for x in inputs:
        with torch.no_grad():
            ref = model(x)
        ref = ref if isinstance(ref, (tuple, list)) else (ref, )
        try:
            got = session.run(None, {'input': x.numpy()})
        except Exception as err:  # onnxruntime raises its own exception types
            raise RuntimeError(
                f'{path}: onnxruntime failed for input {tuple(x.shape)}: {str(err).splitlines()[0]}. '
                'The graph keeps the Python branches taken at export time: export at a size where '
                'every attention stage pads and splits into several windows (e.g. 800x1216).') from err
        if len(got) != len(ref):
            raise RuntimeError(f'{path}: onnxruntime gave {len(got)} outputs, PyTorch {len(ref)}')
        diff, scale = 0.0, 0.0
        for g, r in zip(got, ref):
            r = r.numpy()
            if g.shape != r.shape:
                raise RuntimeError(f'{path}: output shape {g.shape} from onnxruntime != {r.shape} '
                                   f'from PyTorch for input {tuple(x.shape)}')
            diff = max(diff, float(np.abs(g - r).max()))
            scale = max(scale, float(np.abs(r).max()))
        records.append(dict(shape=tuple(x.shape), max_abs_diff=diff, max_abs_ref=scale))
        if not diff <= atol:
            raise RuntimeError(f'{path}: onnxruntime differs from PyTorch by {diff:.3g} > {atol:g} '
                               f'for input {tuple(x.shape)} (largest output value {scale:.3g})')
    return records
