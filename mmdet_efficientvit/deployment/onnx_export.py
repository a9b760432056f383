"""Export models to ONNX with dynamic batch/height/width and check onnxruntime against PyTorch.

The TorchScript-based exporter (``dynamo=False``) is used: it records the shape arithmetic of the
window attention (padding amounts, window counts) as graph ops, and the attention makes its
one-window-or-several choice inside the graph while traced (``LocalWindowAttention``), so one graph
serves every input size, small ones included. ``check_onnx`` compares raw outputs,
``check_end2end`` the detections (and pasted masks) of an end-to-end graph with the detector's
``predict``. A size at which PyTorch itself cannot run the model (e.g. RTMDet's CSPNeXtPAFPN needs
multiples of 32) is skipped with the reason; the check fails if no size is left.
"""
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from mmdet_efficientvit_runtime import OrtSession, paste_masks

from .pairing import SCORE_ATOL, match_detections, pairing_rule
from .traceable import image_data_samples

DEFAULT_OPSET = 17
# Masks judged by IoU: not those of boxes narrower than MIN_MASK_SIDE px (slivers clipped at the
# border: a 28-px mask stretched over a pixel column moves pixels across the threshold with 1e-3 px
# of box noise), nor masks of fewer than MIN_MASK_PIXELS pixels in predict (two boundary pixels
# that flip with 1e-4 of noise in the probability cost them 0.98; random weights make such specks)
MIN_MASK_SIDE = 2.0
MIN_MASK_PIXELS = 100


def export_onnx(model: nn.Module,
                path: str,
                sample: torch.Tensor,
                output_names: Optional[Sequence[str]] = None,
                opset: int = DEFAULT_OPSET,
                output_axes: Optional[Dict[str, Dict[int, str]]] = None) -> str:
    """Export ``model(sample)`` to ``path`` with dynamic batch, height and width; return the path.

    ``output_axes`` names the dynamic axes of each output; by default every output is a
    (batch, C, H, W) map with all but C dynamic.
    """
    model = model.eval()
    with torch.no_grad():
        outputs = model(sample)
    num_outputs = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    output_names = list(output_names or [f'output{i}' for i in range(num_outputs)])
    if len(output_names) != num_outputs:
        raise ValueError(f'{len(output_names)} output names given for {num_outputs} outputs')
    dynamic_axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
    if output_axes is None:
        output_axes = {name: {0: 'batch', 2: f'{name}_h', 3: f'{name}_w'} for name in output_names}
    dynamic_axes.update(output_axes)
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


def pytorch_reference(run: Callable[[torch.Tensor], object], x: torch.Tensor):
    """``(run(x), None)`` without autograd, or ``(None, reason)`` when PyTorch itself fails at this
    input size (a shape mismatch inside the model, not a difference to report)."""
    try:
        with torch.no_grad():
            return run(x), None
    except RuntimeError as err:
        return None, f'PyTorch itself fails at this size ({str(err).strip().splitlines()[0][:160]})'


def _require_checked(path: str, records: List[Dict]) -> List[Dict]:
    if records and all('skipped' in r for r in records):
        raise RuntimeError(f"{path}: no input size could be checked: {records[0]['skipped']}; "
                           'pass --check-sizes the model runs at')
    return records


def check_onnx(path: str, model: nn.Module, inputs: List[torch.Tensor], atol: float = 1e-4,
               session=None) -> List[Dict]:
    """Run the ONNX graph and ``model`` on each input; raise if any output differs by more than atol.

    Returns one record per input: ``dict(shape, max_abs_diff, max_abs_ref)``, or
    ``dict(shape, skipped)`` where PyTorch itself cannot run (:func:`pytorch_reference`).
    """
    session = session or OrtSession(path)
    records = []
    for x in inputs:
        ref, skipped = pytorch_reference(model, x)
        if skipped:
            records.append(dict(shape=tuple(x.shape), skipped=skipped))
            continue
        ref = ref if isinstance(ref, (tuple, list)) else (ref, )
        try:
            got = session.run({'input': x.numpy()})
        except Exception as err:  # onnxruntime raises its own exception types
            raise RuntimeError(f'{path}: onnxruntime failed for input {tuple(x.shape)}: '
                               f'{str(err).splitlines()[0]}') from err
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
    return _require_checked(path, records)


def detections(dets: np.ndarray, labels: np.ndarray) -> Dict[str, np.ndarray]:
    """One image's rows of an end-to-end graph's outputs, padding (label -1) dropped."""
    keep = labels >= 0
    return dict(bboxes=dets[keep, :4], scores=dets[keep, 4], labels=labels[keep])


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) IoU of paired (N, H, W) bool masks; 1 where both are empty."""
    inter = (a & b).reshape(len(a), -1).sum(1, dtype=np.float64)
    union = (a | b).reshape(len(a), -1).sum(1, dtype=np.float64)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.)


def _judged_mask(pred, index: int) -> bool:
    """Whether ``predict``'s detection ``index`` has a mask that IoU can judge (see
    :data:`MIN_MASK_PIXELS`)."""
    box = pred.bboxes[index]
    return bool((box[2:] - box[:2] >= MIN_MASK_SIDE).all()
                and pred.masks[index].sum() >= MIN_MASK_PIXELS)


def check_end2end(path: str, detector: nn.Module, inputs: List[torch.Tensor],
                  score_atol: float = SCORE_ATOL, min_match: float = 0.99,
                  min_mask_iou: float = 0.98,
                  session=None) -> List[Dict]:
    """Compare an end-to-end graph with the detector's own ``predict`` (with NMS) on each input.

    Detections are paired by :func:`~.pairing.match_detections` (same label, scores within
    ``score_atol``, IoU > 0.99 or coordinates within 0.01 px); raise unless at least ``min_match``
    of them pair up on every input (float rounding may decide between near-equal candidates at the
    top-k, ``score_thr`` and NMS). A graph with ``masks`` has them pasted as deployment pastes them
    (the runtime's ``paste_masks``, the detector's ``test_cfg.rcnn.mask_thr_binary``): every pair's
    mask IoU with ``predict``'s must exceed ``min_mask_iou`` (pairs whose box has both sides >= :data:`MIN_MASK_SIDE` and whose mask
    in ``predict`` has at least :data:`MIN_MASK_PIXELS` pixels). Returns one record per input:
    ``shape`` and the summed pairing counts (and ``masks``, the number of masks judged, and their
    ``min_mask_iou``), or ``shape`` and ``skipped`` where PyTorch itself cannot run
    (:func:`pytorch_reference`).
    """
    session = session or OrtSession(path)
    names = session.output_names
    with_masks = 'masks' in names
    records = []
    for x in inputs:
        ref, skipped = pytorch_reference(lambda t: detector.predict(t, image_data_samples(t)), x)
        if skipped:
            records.append(dict(shape=tuple(x.shape), skipped=skipped))
            continue
        out = dict(zip(names, session.run({'input': x.numpy()})))
        record = dict(shape=tuple(x.shape), ref=0, got=0, matched=0, max_score_diff=0.,
                      max_box_diff=0., unpaired='')
        if with_masks:
            record.update(masks=0, min_mask_iou=1.)
        for i, sample in enumerate(ref):
            pred = sample.pred_instances
            got = detections(out['dets'][i], out['labels'][i])
            pair = match_detections(
                dict(bboxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                     labels=pred.labels.numpy()), got, score_atol=score_atol,
                names=('PyTorch', 'onnxruntime'))
            for key in ('ref', 'got', 'matched'):
                record[key] += pair[key]
            for key in ('max_score_diff', 'max_box_diff'):
                record[key] = max(record[key], pair[key])
            record['unpaired'] = record['unpaired'] or pair['unpaired']
            judged = [(r, g) for r, g in pair['pairs'] if with_masks and _judged_mask(pred, r)]
            if judged:
                ref_index, got_index = (list(index) for index in zip(*judged))
                masks = out['masks'][i][out['labels'][i] >= 0][got_index]
                pasted = paste_masks(masks, got['bboxes'][got_index], x.shape[2], x.shape[3],
                                     detector.test_cfg['rcnn']['mask_thr_binary'])
                iou = mask_iou(pasted, pred.masks[ref_index].bool().numpy())
                record['masks'] += len(judged)
                record['min_mask_iou'] = min(record['min_mask_iou'], float(iou.min()))
        records.append(record)
        most = max(record['ref'], record['got'])
        if record['matched'] < min_match * most:
            raise RuntimeError(
                f"{path}: for input {record['shape']} only {record['matched']} of {most} detections "
                f"match PyTorch's predict ({pairing_rule(score_atol=score_atol)}; onnxruntime has "
                f"{record['got']}, PyTorch {record['ref']}); first unpaired: {record['unpaired']}")
        if with_masks and not record['min_mask_iou'] > min_mask_iou:
            raise RuntimeError(
                f"{path}: for input {record['shape']} a pasted mask has IoU "
                f"{record['min_mask_iou']:.3f} <= {min_mask_iou} with PyTorch's predict")
    return _require_checked(path, records)
