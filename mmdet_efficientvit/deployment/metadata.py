"""What a deployed detector needs besides its graph, stored in the ONNX file's ``metadata_props``.

The runtime (``mmdet_efficientvit_runtime``, run by ``onnx_inference.py``) reads these keys (all
values are strings, JSON where noted):

* ``preprocess`` (JSON): the config's test ``Resize`` (``scale`` as (w, h), ``keep_ratio``,
  ``interpolation``), its ``Pad`` after the resize if any (``image_pad``: null or ``size`` as
  (w, h) or null, ``size_divisor`` or null, ``pad_to_square``, ``value`` per channel of the BGR
  image, as mmcv's ``impad`` fills it) and data preprocessor (``mean``, ``std``, ``bgr_to_rgb``,
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

# test pipeline steps by what the runtime does with them
LOAD_STEPS = ('LoadImageFromFile', )
RESIZE_STEPS = ('Resize', )
PAD_STEPS = ('Pad', )
IGNORED_STEPS = ('LoadAnnotations', 'PackDetInputs')  # no effect on the network input


def _step_type(step: dict) -> str:
    return str(step['type']).split('.')[-1]  # 'mmdet.Resize' -> 'Resize'


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
    """The config's test preprocessing as :mod:`mmdet_efficientvit_runtime` applies it; refuses what it cannot."""
    pipeline = _test_pipeline(cfg)
    types = [_step_type(step) for step in pipeline]
    supported = LOAD_STEPS + RESIZE_STEPS + PAD_STEPS + IGNORED_STEPS
    unknown = [t for t in types if t not in supported]
    if unknown:
        raise ConfigError(f'the test pipeline step {unknown[0]} is not supported by '
                          f'onnx_inference.py (it reproduces {", ".join(supported)}): export a '
                          f'config whose test pipeline uses only those, got {types}')
    for step in pipeline:
        if _step_type(step) in LOAD_STEPS and (step.get('color_type', 'color') != 'color'
                                              or step.get('imdecode_backend', 'cv2') != 'cv2'):
            raise ConfigError('the test LoadImageFromFile must read colour images with cv2 '
                              f'(color_type="color", imdecode_backend="cv2"), got {step}')
    resizes = [i for i, t in enumerate(types) if t in RESIZE_STEPS]
    pads = [i for i, t in enumerate(types) if t in PAD_STEPS]
    if len(resizes) != 1:
        raise ConfigError(f'the test pipeline needs exactly one Resize step, found {len(resizes)}: '
                          f'{types}')
    if len(pads) > 1 or (pads and pads[0] < resizes[0]):
        raise ConfigError(f'the test pipeline may have one Pad step, after its Resize: {types}')
    resize = pipeline[resizes[0]]
    scale = resize.get('scale')
    if scale is None or resize.get('backend', 'cv2') != 'cv2':
        raise ConfigError(f'the test Resize must give `scale` and use the cv2 backend, got {resize}')
    scale = [int(scale), int(scale)] if isinstance(scale, (int, float)) else [int(s) for s in scale]
    pre = cfg.model.get('data_preprocessor') or {}
    return dict(
        scale=scale,
        keep_ratio=bool(resize.get('keep_ratio', False)),
        interpolation=resize.get('interpolation', 'bilinear'),
        image_pad=_image_pad(pipeline[pads[0]]) if pads else None,
        mean=[float(v) for v in pre.get('mean', (0., 0., 0.))],
        std=[float(v) for v in pre.get('std', (1., 1., 1.))],
        bgr_to_rgb=bool(pre.get('bgr_to_rgb', False) or pre.get('rgb_to_bgr', False)),
        pad_size_divisor=int(pre.get('pad_size_divisor', 1)),
        pad_value=float(pre.get('pad_value', 0)))


def _image_pad(step: dict) -> Dict:
    """A test ``Pad`` step (mmcv's ``Pad._pad_img``) as the runtime applies it."""
    size, divisor = step.get('size'), step.get('size_divisor')
    square = bool(step.get('pad_to_square', False))
    pad_val = step.get('pad_val', dict(img=0, seg=255))
    pad_val = dict(img=pad_val) if isinstance(pad_val, int) else pad_val
    if (step.get('padding_mode', 'constant') != 'constant' or not isinstance(pad_val, dict)
            or (square and size is not None) or (not square and (size is None) == (divisor is None))):
        raise ConfigError('the test Pad must pad with a constant (padding_mode="constant", pad_val '
                          'a number or dict(img=...)) to a fixed size, a size divisor or a square '
                          f'(with an optional divisor), got {step}')
    value = pad_val.get('img', 0)
    # mmcv repeats an int over the channels; OpenCV reads a float v as the colour (v, 0, 0)
    if isinstance(value, (int, float)):
        value = [value] * 3 if isinstance(value, int) else [value, 0, 0]
    return dict(size=[int(v) for v in size] if size is not None else None,
                size_divisor=int(divisor) if divisor is not None else None,
                pad_to_square=square, value=[float(v) for v in value])


def class_names(cfg: Config, dataset_meta: Optional[dict], num_classes: int) -> List[str]:
    """The classes of the checkpoint's ``dataset_meta`` (as ``build_detector`` keeps it), else of the
    config's test dataset."""
    classes = (dataset_meta or {}).get('classes')
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


def deploy_metadata(cfg: Config, config_name: str, checkpoint: Optional[str],
                    dataset_meta: Optional[dict], num_classes: int, test_cfg: dict,
                    outputs: str) -> Dict[str, str]:
    """The ``metadata_props`` of an end-to-end detector (see the module docstring);
    ``dataset_meta``: what the checkpoint brought (None without one)."""
    return dict(
        preprocess=json.dumps(test_preprocessing(cfg)),
        classes=json.dumps(class_names(cfg, dataset_meta, num_classes)),
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
