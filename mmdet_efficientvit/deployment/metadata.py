"""What a deployed detector needs besides its graph, stored in the ONNX file's ``metadata_props``.

``tools/deployment/onnx_inference.py`` reads these keys (all values are strings, JSON where noted):

* ``preprocess`` (JSON): the config's test ``Resize`` (``scale`` as (w, h), ``keep_ratio``,
  ``interpolation``) and data preprocessor (``mean``, ``std``, ``bgr_to_rgb``,
  ``pad_size_divisor``, ``pad_value``);
* ``classes`` (JSON list): the class names, from the checkpoint's ``dataset_meta`` or the config;
* ``outputs``: the output convention; ``test_cfg`` (JSON); ``config`` (the name it was exported
  from) and ``config_text``; ``checkpoint`` (file name); ``producer``.
"""
import json
import os
from typing import Dict, List, Optional

from mmengine.config import Config

from ..errors import ConfigError
from ..version import __version__

RESIZE_TYPES = ('Resize', 'mmdet.Resize')


def _test_pipeline(cfg: Config) -> List[dict]:
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while 'dataset' in dataset:  # dataset wrappers
        dataset = dataset['dataset']
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise ConfigError('the config has no test pipeline (test_dataloader.dataset.pipeline or '
                          'test_pipeline): add the one tools/test.py uses')
    return list(pipeline)


def test_preprocessing(cfg: Config) -> Dict:
    """The config's test preprocessing as :mod:`onnx_inference` applies it; refuses what it cannot."""
    pipeline = _test_pipeline(cfg)
    for step in pipeline:
        if step['type'] in ('LoadImageFromFile', 'mmdet.LoadImageFromFile'):
            if (step.get('color_type', 'color') != 'color'
                    or step.get('imdecode_backend', 'cv2') != 'cv2'):
                raise ConfigError('the test LoadImageFromFile must read colour images with cv2 '
                                  f'(color_type="color", imdecode_backend="cv2"), got {step}')
    resizes = [step for step in pipeline if step['type'] in RESIZE_TYPES]
    if len(resizes) != 1:
        raise ConfigError(f'the test pipeline needs exactly one Resize step, found {len(resizes)}: '
                          f'{[step["type"] for step in pipeline]}')
    resize = resizes[0]
    scale = resize.get('scale')
    if scale is None or resize.get('backend', 'cv2') != 'cv2':
        raise ConfigError(f'the test Resize must give `scale` and use the cv2 backend, got {resize}')
    scale = [int(scale), int(scale)] if isinstance(scale, (int, float)) else [int(s) for s in scale]
    pre = cfg.model.get('data_preprocessor') or {}
    return dict(
        scale=scale,
        keep_ratio=bool(resize.get('keep_ratio', False)),
        interpolation=resize.get('interpolation', 'bilinear'),
        mean=[float(v) for v in pre.get('mean', (0., 0., 0.))],
        std=[float(v) for v in pre.get('std', (1., 1., 1.))],
        bgr_to_rgb=bool(pre.get('bgr_to_rgb', False) or pre.get('rgb_to_bgr', False)),
        pad_size_divisor=int(pre.get('pad_size_divisor', 1)),
        pad_value=float(pre.get('pad_value', 0)))


def class_names(cfg: Config, checkpoint: Optional[str], num_classes: int) -> List[str]:
    """The classes of the checkpoint's ``dataset_meta``, else of the config's test dataset."""
    classes = None
    if checkpoint is not None:
        from mmengine.runner import CheckpointLoader
        meta = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu').get('meta') or {}
        classes = (meta.get('dataset_meta') or {}).get('classes') or meta.get('CLASSES')
    if classes is None:
        dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
        while 'dataset' in dataset:
            dataset = dataset['dataset']
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes is None and dataset.get('type'):
            from mmdet.registry import DATASETS
            dataset_cls = DATASETS.get(dataset['type'])
            classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    if classes is None or len(classes) != num_classes:
        found = 'none' if classes is None else f'{len(classes)}'
        raise ConfigError(f'cannot tell the names of the {num_classes} classes (found {found} in '
                          "the checkpoint's dataset_meta and the config's test dataset): set "
                          'test_dataloader.dataset.metainfo.classes in the config')
    return [str(c) for c in classes]


def deploy_metadata(cfg: Config, config_name: str, checkpoint: Optional[str], num_classes: int,
                    test_cfg: dict, outputs: str) -> Dict[str, str]:
    """The ``metadata_props`` of an end-to-end detector (see the module docstring)."""
    return dict(
        preprocess=json.dumps(test_preprocessing(cfg)),
        classes=json.dumps(class_names(cfg, checkpoint, num_classes)),
        outputs=outputs,
        test_cfg=json.dumps(test_cfg),
        config=config_name,
        config_text=cfg.pretty_text,
        checkpoint=os.path.basename(checkpoint) if checkpoint else 'none (random weights)',
        producer=f'mmdet-efficientvit {__version__} export_onnx.py --end2end')


def write_metadata(path: str, metadata: Dict[str, str]) -> None:
    """Set (add or replace) ``metadata_props`` entries of the ONNX file at ``path``, in place."""
    import onnx
    model = onnx.load(path)
    props = {p.key: p.value for p in model.metadata_props}
    props.update(metadata)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


def read_metadata(path: str) -> Dict[str, str]:
    import onnx
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
