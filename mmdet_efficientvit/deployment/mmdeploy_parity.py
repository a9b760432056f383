"""mmdeploy's ONNX export of a detector against ours (``export_onnx.py --end2end``), same weights.

mmdeploy 1.3.1 runs with the opt-in fix :mod:`mmdet_efficientvit.compat.mmdeploy` (which the deploy
configs in ``configs/deploy/`` import). Both graphs take the same normalised, padded batch and return
``dets`` (B, K, 5) and ``labels`` (B, K) in network-input pixels, so they are run on the same inputs and
their detections paired (:func:`~.pairing.match_detections`: same label and score, the same box);
ours is also paired with the detector's PyTorch ``predict``, which tells floating-point ties from
differences.
One difference is mmdeploy's: it keeps boxes that ``min_bbox_size`` removes (:func:`without_small_boxes`).
``tools/deployment/check_mmdeploy.py`` is the command; its test runs it.
"""
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet_efficientvit_runtime import OrtSession

from ..resources import config_path
from .pairing import match_detections
from .traceable import image_data_samples

DETECTION_DEPLOY_CONFIG = 'deploy/detection_onnxruntime_dynamic.py'


def random_check_weights(config: str, path: str, seed: int = 0) -> str:
    """Save random weights worth comparing detections on to ``path`` (an mmengine checkpoint): those
    ``export_onnx.py --end2end`` checks with when it has no ``--checkpoint`` (:func:`randomize_for_check`)."""
    from ..models.builders import build_detector
    from .end2end import randomize_for_check
    torch.manual_seed(seed)
    detector = randomize_for_check(build_detector(config), seed)
    torch.save(dict(state_dict=detector.state_dict(), meta=dict(random_seed=seed)), path)
    return path


def mmdeploy_export(config: str, checkpoint: Optional[str], image: str, out: str,
                    deploy_config: str = DETECTION_DEPLOY_CONFIG) -> str:
    """Export ``config`` (+ ``checkpoint``) to ``out`` with ``mmdeploy.apis.torch2onnx`` on the CPU,
    tracing ``image``; ``deploy_config`` is a path or a shipped config name. Returns ``out``."""
    import mmdet_efficientvit.compat.mmdeploy  # noqa: F401  (the fix, also for other deploy configs)
    from mmdeploy.apis import torch2onnx
    deploy = deploy_config if os.path.isfile(deploy_config) else config_path(deploy_config)
    model = config if os.path.isfile(config) else config_path(config)
    work_dir, name = os.path.split(os.path.abspath(out))
    torch2onnx(image, work_dir, name, deploy, model, checkpoint, device='cpu')
    return out


def onnx_detections(dets: np.ndarray, labels: np.ndarray) -> Dict[str, np.ndarray]:
    """One image's rows of ``dets``/``labels`` without the padding: score-0 rows, labelled -1 in
    ours, -1 or 0 in mmdeploy's."""
    keep = (dets[:, 4] > 0) & (labels >= 0)
    return dict(bboxes=dets[keep, :4], scores=dets[keep, 4], labels=labels[keep])


def without_small_boxes(dets: Dict[str, np.ndarray], min_size: float) -> Dict[str, np.ndarray]:
    """``dets`` without the boxes that mmdet's ``_bbox_post_process`` drops before NMS: width or
    height not above ``test_cfg.min_bbox_size`` (0: boxes clipped to nothing at the border).
    mmdeploy 1.3.1 does not apply ``min_bbox_size``: its lists may hold them."""
    wh = dets['bboxes'][:, 2:] - dets['bboxes'][:, :2]
    keep = (wh > min_size).all(1)
    return {k: v[keep] for k, v in dets.items()}


def best(dets: Dict[str, np.ndarray], n: int) -> Dict[str, np.ndarray]:
    """The ``n`` highest-scored of ``dets``."""
    order = np.argsort(-dets['scores'], kind='stable')[:n]
    return {k: v[order] for k, v in dets.items()}


def compare_graphs(ours: str, theirs: str, inputs: Sequence[np.ndarray],
                   detector: torch.nn.Module) -> List[Dict]:
    """Run both end-to-end graphs and ``detector.predict`` on each (B, 3, H, W) input; one record
    per image of ``match_detections`` pairings (``ref``, ``got``, ``matched``, ``max_score_diff``,
    ``max_box_diff``):

    - ``mmdeploy``: mmdeploy's detections against ours;
    - ``predict``: ours against PyTorch's ``predict`` (where they differ, floating-point ties decide,
      e.g. random weights whose scores saturate at 1.0, and two graphs may differ as well);
    - ``sized``: mmdeploy's without the boxes mmdet drops by ``min_bbox_size``
      (:func:`without_small_boxes`) against as many of our best.
    """
    min_size = detector.bbox_head.test_cfg.get('min_bbox_size', -1)
    ours_session, their_session = OrtSession(ours), OrtSession(theirs)
    records = []
    for x in inputs:
        ref = ours_session.run({'input': x})
        got = their_session.run({'input': x})
        with torch.no_grad():
            batch = torch.from_numpy(x)
            predicted = detector.predict(batch, image_data_samples(batch))
        for i in range(x.shape[0]):
            mine, other = onnx_detections(ref[0][i], ref[1][i]), onnx_detections(got[0][i], got[1][i])
            sized = without_small_boxes(other, min_size) if min_size >= 0 else other
            pred = predicted[i].pred_instances
            pred = dict(bboxes=pred.bboxes.numpy(), scores=pred.scores.numpy(),
                        labels=pred.labels.numpy())
            records.append(dict(
                mmdeploy=match_detections(mine, other),
                predict=match_detections(pred, mine),
                sized=match_detections(best(mine, len(sized['scores'])), sized)))
    return records


def identical(pairing: Dict) -> bool:
    """Whether two detection sets (a ``match_detections`` result) pair up completely."""
    return pairing['matched'] == pairing['ref'] == pairing['got']
