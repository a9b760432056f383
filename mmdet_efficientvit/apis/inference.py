"""Detectors on single image files, PyTorch or an end-to-end ONNX graph, and the picture of their
detections as ``tools/demo.py`` draws it.

Both kinds of detector are called as ``detector(path) -> DetDataSample`` (detections in the image's
pixels, as mmdet's ``predict(rescale=True)`` gives them) and carry the mmdet ``visualizer`` that draws
them:

* :class:`PytorchDetector`: a config and checkpoint through mmdet's ``DetInferencer`` (any detector
  the config builds; boxes, and masks for Mask R-CNN);
* :class:`OnnxDetector`: a graph written by ``export_onnx.py --end2end``, run by the runtime module
  :mod:`mmdet_efficientvit_runtime` (onnxruntime or OpenVINO; its preprocessing, box mapping and
  mask pasting, as ``onnx-inference`` runs the graph).

:func:`for_drawing` picks what a picture shows and :func:`draw_detections` draws it with mmdet's
``DetLocalVisualizer``; ``tools/demo.py`` and the demo page (:mod:`.webui`) call these two, so the
page shows what the tool writes.
"""
import os.path as osp
from typing import Union

import mmcv
import numpy as np
import torch
from mmcv.ops import nms
from mmdet.apis import DetInferencer
from mmdet.registry import DATASETS, VISUALIZERS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.structures import InstanceData
from mmdet_efficientvit_runtime import UserError, detect, load_model

from ..errors import SetupError
from ..models.builders import check_detector_config
from ..models.utils import read_checkpoint
from ..resources import load_config

# mmdet's default_runtime visualizer, which every config here inherits: how ONNX detections are drawn
VISUALIZER = dict(type='DetLocalVisualizer')


def for_drawing(pred: DetDataSample, score_thr: float, dedup_iou: float) -> DetDataSample:
    """A copy of ``pred`` with what the picture shows: detections above ``score_thr`` and, among
    boxes overlapping by more than ``dedup_iou`` whatever their classes, the best-scoring one."""
    pred = pred.clone()
    instances = pred.pred_instances[pred.pred_instances.scores > score_thr]
    if dedup_iou < 1 and len(instances):
        _, keep = nms(instances.bboxes, instances.scores, dedup_iou)  # class-agnostic NMS
        instances = instances[keep]
    pred.pred_instances = instances
    return pred


def draw_detections(visualizer, image: np.ndarray, drawn: DetDataSample,
                    score_thr: float) -> np.ndarray:
    """The RGB picture of ``image`` (BGR, as mmcv reads it) with the detections of ``drawn`` (from
    :func:`for_drawing`): what ``DetInferencer.visualize`` draws, without writing a file.

    mmdet jitters each mask's colour with numpy's global random generator; it is seeded here (and
    restored after), so one image and its detections always give the same picture."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        visualizer.add_datasample('image', mmcv.bgr2rgb(image), drawn, draw_gt=False,
                                  pred_score_thr=score_thr)
    finally:
        np.random.set_state(state)
    return visualizer.get_image()


class _CheckpointInferencer(DetInferencer):
    """mmdet's DetInferencer on a checkpoint already read (by :func:`read_checkpoint`: safely, with
    one-line errors, once), and with class names from the config's test dataset for a checkpoint
    without any (DetInferencer would take COCO's)."""

    def __init__(self, cfg: Config, checkpoint: dict, device: str):
        self._checkpoint = checkpoint
        super().__init__(model=cfg, weights=None, device=device, show_progress=False)
        del self._checkpoint  # the model holds the weights now

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        # mmengine's hook for "what the checkpoint gives the model", called with weights=None's None
        super()._load_weights_to_model(model, self._checkpoint, cfg)
        meta = self._checkpoint.get('meta') or {}
        if 'dataset_meta' not in meta and 'CLASSES' not in meta:
            classes = dataset_metainfo(cfg).get('classes')
            if classes:
                model.dataset_meta = dict(classes=tuple(classes))


def build_inferencer(cfg: Config, checkpoint: str, device: str) -> DetInferencer:
    """mmdet's DetInferencer, with class names from the checkpoint (as DetInferencer reads them) or,
    for a checkpoint without any, from the config's test dataset; the checkpoint is read once."""
    return _CheckpointInferencer(cfg, read_checkpoint(checkpoint), device)


def dataset_metainfo(cfg: Config) -> dict:
    """The metainfo (classes, palette) of a config's test dataset, where DetInferencer looks for
    them; nothing is read from disk."""
    return DATASETS.build(dict(cfg.test_dataloader.dataset, lazy_init=True)).metainfo


class PytorchDetector:
    """A config (file, ``mmdet_efficientvit::`` name or loaded ``Config``) and a checkpoint, run by
    mmdet's DetInferencer on ``device``; the config must build one of mmdet's detectors."""

    def __init__(self, config: Union[str, Config], checkpoint: str, device: str = 'cpu'):
        if isinstance(config, str) and '::' not in config and not osp.isfile(config):
            raise SetupError(f'config {config} not found: pass a config file or a shipped config '
                             'name (mmdet_efficientvit::retinanet_evit_m4_fpn_1x_coco.py)')
        if '://' not in checkpoint and not osp.isfile(checkpoint):  # URLs are read_checkpoint's
            raise SetupError(f'checkpoint {checkpoint} not found: pass the .pth that tools/train.py '
                             'wrote for this config')
        cfg = load_config(config) if isinstance(config, str) else config
        check_detector_config(cfg, config if isinstance(config, str) else cfg.filename)
        self.inferencer = build_inferencer(cfg, checkpoint, device)
        self.visualizer = self.inferencer.visualizer
        config_name = osp.basename(config if isinstance(config, str) else cfg.filename)
        self.name = f'PyTorch: {osp.splitext(config_name)[0]} ({osp.basename(checkpoint)}, {device})'

    def __call__(self, path: str) -> DetDataSample:
        return self.inferencer(path, return_datasamples=True, no_save_vis=True)['predictions'][0]


class OnnxDetector:
    """An end-to-end graph (``export_onnx.py --end2end``) under ``runtime`` (``onnxruntime`` or
    ``openvino``, in f32), with the preprocessing and class names stored in the file."""

    def __init__(self, path: str, runtime: str = 'onnxruntime', threads: int = 0):
        try:
            self.session, self.meta = load_model(path, threads, runtime=runtime)
        except UserError as err:
            raise SetupError(str(err)) from None
        # box colours as DetInferencer picks them for the config the graph was exported from (its
        # test dataset's palette), else mmdet's seeded random ones
        config_text = self.session.metadata.get('config_text')
        palette = (dataset_metainfo(Config.fromstring(config_text, '.py')).get('palette')
                   if config_text else None)
        self.visualizer = VISUALIZERS.build(dict(VISUALIZER, name=f'onnx-{id(self)}'))
        self.visualizer.dataset_meta = dict(classes=tuple(self.meta['classes']),
                                            palette=palette or 'random')
        self.name = f'ONNX: {osp.basename(path)} ({self.session.name})'

    def __call__(self, path: str) -> DetDataSample:
        (_, image, result, _), = detect(self.session, self.meta, [path], log=_quiet)
        if result is None:
            raise SetupError(f'{path} is not a readable image')
        instances = InstanceData(bboxes=torch.from_numpy(result['bboxes']),
                                 scores=torch.from_numpy(result['scores']),
                                 labels=torch.from_numpy(result['labels'].astype(np.int64)))
        if 'masks' in result:
            instances.masks = torch.from_numpy(result['masks'])
        return DetDataSample(pred_instances=instances,
                             metainfo=dict(img_path=path, ori_shape=image.shape[:2]))


def _quiet(message: str) -> None:
    """``detect``'s log of unreadable images: the caller reports them."""


Detector = Union[PytorchDetector, OnnxDetector]
