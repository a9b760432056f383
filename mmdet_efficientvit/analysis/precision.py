"""How far a run in reduced precision, or on another device, may drift from the fp32 CPU run.

One measure, :func:`relative_error` (largest absolute difference over the largest reference magnitude,
per output map, worst map), and one tolerance per autocast dtype, shared by the CPU tests and the GPU
check (``tools/analysis_tools/gpu_check.py``):

* ``float32`` 1e-4: the same arithmetic in another order (CUDA vs CPU kernels, TF32 off) differs by a
  few float32 roundings per layer, ~1e-6 relative.
* ``float16`` 5e-3: 11 significant bits (rounding 2^-11 ~ 5e-4 per op) over the ~40 layers in series
  of EfficientViT give ~1.5e-3.
* ``bfloat16`` 3e-2: 8 significant bits (2^-8 ~ 4e-3 per op) give ~1e-2 on M0-M5 (measured on CPU,
  unfused and deployed, 224x224 and 160x256).

A real error (a stale folded BatchNorm, a wrong attention bias, a bad cast) moves the maps by O(0.1-1).

Gradients of a training step under autocast must point along the fp32 ones (``GRADIENT_COSINE``):
with the detectors' frozen BatchNorms (``norm_eval=True``) bfloat16 gives ~0.9999 on M0 + neck. (With
BatchNorms in training mode it gives ~0.7 on random weights: a BN bias's gradient sums bf16 values that
largely cancel.)
"""
from typing import Sequence

import torch

TOLERANCE = {'float32': 1e-4, 'float16': 5e-3, 'bfloat16': 3e-2}
GRADIENT_COSINE = 0.999


def relative_error(outputs: Sequence[torch.Tensor], reference: Sequence[torch.Tensor]) -> float:
    """max over maps of ``max|out - ref| / max|ref|``, computed in float32 on the CPU."""
    if len(outputs) != len(reference):
        raise ValueError(f'{len(outputs)} outputs against {len(reference)} reference maps')
    worst = 0.
    for out, ref in zip(outputs, reference):
        out, ref = out.detach().float().cpu(), ref.detach().float().cpu()
        if out.shape != ref.shape:
            raise ValueError(f'output of shape {tuple(out.shape)} against {tuple(ref.shape)}')
        worst = max(worst, ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item())
    return worst
