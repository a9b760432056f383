"""Detect objects with an end-to-end ONNX detector without PyTorch: onnxruntime/OpenVINO, numpy, OpenCV.

This is mmdet-efficientvit's runtime: preprocessing, sessions (onnxruntime, OpenVINO), box mapping,
mask pasting, drawing, COCO evaluation and the command line (``main``; ``mmdet-efficientvit
onnx-inference`` and ``tools/deployment/onnx_inference.py`` run it). The package's exporter, INT8
calibration, benchmarks and demo page import it, so they read images and run graphs exactly as
deployment does. It is a top-level module of the wheel, not part of ``mmdet_efficientvit`` (whose
import needs PyTorch and mmdet), and it is kept ONE file on purpose: users copy it next to their
``.onnx`` and run it on a machine with only onnxruntime, numpy and OpenCV.

The model is one exported by ``export_onnx.py CONFIG --checkpoint CKPT --end2end``: image batch in,
``dets`` (B, K, 5) and ``labels`` (B, K) out (padding rows: score 0, label -1), and for Mask R-CNN
``masks`` (B, K, M, M): each detection's mask probabilities of its class inside its box. Everything
else this module needs is in the file's metadata: the config's test preprocessing (mmdet's ``Resize``,
the pipeline's ``Pad`` if any, e.g. RTMDet's to 640x640 with 114, and the data preprocessor,
reproduced here exactly), the class names, the ``test_cfg`` (its ``mask_thr_binary``) and the output
convention. Boxes are clipped to the padded image and mapped back to the original one as mmdet's
``predict(rescale=True)`` does; masks are pasted into the original image as mmdet's ``FCNMaskHead``
pastes them (:func:`paste_masks`).

Copy this file and the ``.onnx`` to a machine with ``pip install onnxruntime
opencv-python-headless numpy`` (and ``pycocotools`` for ``--eval``) and run it there::

    python mmdet_efficientvit_runtime.py model.onnx images/ --out-dir detections/
    python mmdet_efficientvit_runtime.py model.onnx data/coco/val2017 \
        --eval data/coco/annotations/instances_val2017.json

With ``--runtime openvino`` (``pip install openvino`` instead of, or next to, onnxruntime) OpenVINO's
CPU plugin runs the same file, in ``--precision f32`` (the default; the same detections as
onnxruntime) or ``bf16`` (only where the CPU has it: faster, with slightly different scores).

Each image gets ``<out-dir>/<name>.png`` with the boxes (and masks) scoring at least ``--score-thr``
drawn. With ``--eval`` every detection (down to the config's ``test_cfg.score_thr``, as
``tools/test.py``) goes into ``<out-dir>/results.bbox.json`` (and, with masks, its RLE-encoded mask
into ``results.segm.json``), scored with pycocotools the way mmdet's ``CocoMetric`` does (maxDets
100/300/1000, IoU 0.50:0.95; segm where the model has masks and the annotations have
segmentations). Images that cannot be read are skipped and named; files already in ``--out-dir`` are
never overwritten unless ``--overwrite``.
"""
import argparse
import json
import os
import sys
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
# mmcv's names for OpenCV's interpolations (``mmcv.image.geometric.cv2_interp_codes``)
INTERPOLATIONS = {'nearest': cv2.INTER_NEAREST, 'bilinear': cv2.INTER_LINEAR,
                  'bicubic': cv2.INTER_CUBIC, 'area': cv2.INTER_AREA,
                  'lanczos': cv2.INTER_LANCZOS4}
RESULTS_FILES = dict(bbox='results.bbox.json', segm='results.segm.json')  # CocoMetric's names
# the end-to-end graphs' outputs: boxes (every detector), then per-box masks (Mask R-CNN)
BOX_OUTPUTS = ['dets', 'labels']
MASK_OUTPUT = 'masks'
# mmdet's CocoMetric defaults: proposal_nums and IoU thresholds
COCO_MAX_DETS = [100, 300, 1000]
COCO_IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RUNTIMES = ('onnxruntime', 'openvino')
DEFAULT_PROVIDER = 'CPUExecutionProvider'
# OpenVINO's INFERENCE_PRECISION_HINT values offered (bf16 only where the CPU has it)
OPENVINO_PRECISIONS = ('f32', 'bf16')


class UserError(Exception):
    """A problem with the user's input; the message names it and the fix."""


# ------------------------------------------------------------------------------------ the model
class OrtSession:
    """A model under onnxruntime: ``run(feeds)`` gives the outputs (numpy) in ``output_names``
    order; ``metadata`` is the file's metadata, ``name`` the runtime as the timing line says it.

    With ``profile_prefix``, onnxruntime's profiler records every node run (:func:`profile_summary`).
    """

    def __init__(self, path: str, threads: int = 0, provider: str = DEFAULT_PROVIDER,
                 profile_prefix: Optional[str] = None):
        import onnxruntime as ort
        if provider not in ort.get_available_providers():
            raise UserError(f'execution provider {provider} is not available in this onnxruntime; '
                            f'choose one of {", ".join(ort.get_available_providers())}')
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        try:
            self.session = ort.InferenceSession(path, options, providers=[provider])
        except Exception as err:  # onnxruntime raises its own exception types
            raise UserError(f'{path} is not a model onnxruntime can load ({_reason(err)}): '
                            're-export it with export_onnx.py --end2end') from None
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata = self.session.get_modelmeta().custom_metadata_map
        self.name = f'onnxruntime ({provider})'

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return self.session.run(None, feeds)


def openvino_core():
    """OpenVINO's ``Core``. OpenVINO is optional: only ``--runtime openvino`` needs it."""
    try:
        import openvino
    except ImportError:
        raise UserError('--runtime openvino needs OpenVINO, which is not installed here: '
                        'pip install openvino, or use --runtime onnxruntime (the default)') from None
    return openvino.Core()


def bf16_unavailable(core) -> Optional[str]:
    """Why OpenVINO cannot run bf16 on this CPU (it would silently run f32), None where it can."""
    capabilities = core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES')
    if 'BF16' in capabilities:
        return None
    return (f"this CPU ({core.get_property('CPU', 'FULL_DEVICE_NAME')}) has no bf16 for OpenVINO "
            f"(its OPTIMIZATION_CAPABILITIES: {', '.join(capabilities)})")


class OpenVINOSession:
    """A model under OpenVINO's CPU plugin, with :class:`OrtSession`'s interface.

    The precision is always set: on CPUs with bf16, OpenVINO's default is bf16, not the graph's f32.
    """

    def __init__(self, path: str, threads: int = 0, precision: str = 'f32'):
        core = openvino_core()
        reason = bf16_unavailable(core) if precision == 'bf16' else None
        if reason:
            raise UserError(f'--precision bf16: {reason}: use --precision f32 (the default)')
        from openvino.frontend import FrontEndManager
        onnx_frontend = FrontEndManager().load_by_framework('onnx')
        try:
            model = onnx_frontend.convert(onnx_frontend.load(path))
            compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': precision,
                                                         'INFERENCE_NUM_THREADS': threads})
        except Exception as err:  # OpenVINO raises its own exception types
            raise UserError(f'{path} is not a model OpenVINO can load ({_reason(err)}): '
                            're-export it with export_onnx.py --end2end') from None
        self.request = compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in model.outputs]
        self.metadata = (model.get_rt_info(['framework']).value  # the ONNX metadata_props
                         if model.has_rt_info(['framework']) else {})
        self.name = f'OpenVINO (CPU, {precision})'

    def run(self, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return list(self.request.infer(feeds).to_tuple())


def _reason(err: Exception) -> str:
    """The telling line of a runtime's exception (OpenVINO's start with source locations)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return (lines[-1] if lines else type(err).__name__)[:200]


def load_model(path: str, threads: int = 0, provider: str = DEFAULT_PROVIDER,
               profile_prefix: Optional[str] = None, runtime: str = 'onnxruntime',
               precision: str = 'f32'):
    """The model at ``path`` under ``runtime`` (:class:`OrtSession`, :class:`OpenVINOSession`) and
    the deployment metadata stored in it. ``provider`` and ``profile_prefix`` are onnxruntime's,
    ``precision`` is OpenVINO's."""
    if not os.path.isfile(path):
        raise UserError(f'{path} not found: pass the .onnx written by export_onnx.py --end2end')
    session = (OpenVINOSession(path, threads, precision) if runtime == 'openvino'
               else OrtSession(path, threads, provider, profile_prefix))
    props = session.metadata
    outputs = session.output_names
    if 'preprocess' not in props or outputs not in (BOX_OUTPUTS, BOX_OUTPUTS + [MASK_OUTPUT]):
        raise UserError(f'{path} is not an end-to-end detector (outputs {outputs}, no preprocessing '
                        'metadata): export it with export_onnx.py CONFIG --checkpoint CKPT --end2end')
    meta = dict(preprocess=json.loads(props['preprocess']), classes=json.loads(props['classes']),
                mask_thr=mask_threshold(path, props) if MASK_OUTPUT in outputs else None)
    return session, meta


def mask_threshold(path: str, props: Dict[str, str]) -> float:
    """The ``mask_thr_binary`` of a masks model's ``test_cfg`` (Mask R-CNN's is under ``rcnn``)."""
    test_cfg = json.loads(props.get('test_cfg') or '{}')
    thr = (test_cfg.get('rcnn') or test_cfg).get('mask_thr_binary')
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or thr < 0:
        raise UserError(f'{path} has a {MASK_OUTPUT} output but its metadata has no test_cfg '
                        f'rcnn.mask_thr_binary >= 0 (found {thr!r}) to make binary masks: '
                        're-export it with export_onnx.py CONFIG --checkpoint CKPT --end2end')
    return float(thr)


# ---------------------------------------------------------------------------- preprocessing
def read_image(path: str) -> Optional[np.ndarray]:
    """BGR uint8 image as mmcv reads it (``cv2.imdecode`` with ``IMREAD_COLOR``), None if unreadable."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def resize(img: np.ndarray, pre: Dict) -> Tuple[np.ndarray, Tuple[float, float]]:
    """mmdet's test ``Resize`` (mmcv ``imrescale``/``imresize``): the image and (w_scale, h_scale)."""
    h, w = img.shape[:2]
    scale_w, scale_h = pre['scale']
    if pre['keep_ratio']:
        factor = min(max(scale_w, scale_h) / max(h, w), min(scale_w, scale_h) / min(h, w))
        new_w, new_h = int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)
    else:
        new_w, new_h = scale_w, scale_h
    img = cv2.resize(img, (new_w, new_h), interpolation=INTERPOLATIONS[pre['interpolation']])
    return img, (new_w / w, new_h / h)


def pad_image(img: np.ndarray, pad: Dict) -> np.ndarray:
    """mmdet's test ``Pad`` (mmcv ``Pad._pad_img`` and ``impad``): bottom/right, never cropping."""
    h, w = img.shape[:2]
    size = (max(h, w), max(h, w)) if pad['pad_to_square'] else None
    if pad['size_divisor']:
        div = pad['size_divisor']
        size = size or (h, w)
        size = (-(-size[0] // div) * div, -(-size[1] // div) * div)
    elif not pad['pad_to_square']:
        size = pad['size'][::-1]  # (w, h) -> (h, w)
    return cv2.copyMakeBorder(img, 0, max(size[0] - h, 0), 0, max(size[1] - w, 0),
                              cv2.BORDER_CONSTANT, value=tuple(pad['value']))


def preprocess(img: np.ndarray, pre: Dict) -> Tuple[np.ndarray, Tuple[float, float]]:
    """Resize, pad, channel order and normalisation of mmdet's test pipeline and data preprocessor.

    Returns the (3, H, W) float32 network image (not yet padded to a batch; H, W are mmdet's
    ``img_shape``) and the (w, h) scale factors.
    """
    img, scale = resize(img, pre)
    if pre.get('image_pad'):
        img = pad_image(img, pre['image_pad'])
    x = img.astype(np.float32)
    if pre['bgr_to_rgb']:
        x = x[..., ::-1]
    x = (x - np.float32(pre['mean'])) / np.float32(pre['std'])
    return np.ascontiguousarray(x.transpose(2, 0, 1)), scale


def pad_batch(images: Sequence[np.ndarray], pre: Dict) -> np.ndarray:
    """Stack (3, H, W) images bottom/right-padded to the largest, rounded up to the pad divisor."""
    div = pre['pad_size_divisor']
    h = max(x.shape[1] for x in images)
    w = max(x.shape[2] for x in images)
    h, w = -(-h // div) * div, -(-w // div) * div
    batch = np.full((len(images), 3, h, w), pre['pad_value'], np.float32)
    for i, x in enumerate(images):
        batch[i, :, :x.shape[1], :x.shape[2]] = x
    return batch


# --------------------------------------------------------------------------- postprocessing
def to_image(dets: np.ndarray, labels: np.ndarray, scale: Tuple[float, float],
             img_shape: Tuple[int, int], masks: Optional[np.ndarray] = None,
             ori_shape: Optional[Tuple[int, int]] = None,
             mask_thr: float = 0.5) -> Dict[str, np.ndarray]:
    """One image's detections in its original pixels, padding rows dropped, as
    ``predict(rescale=True)`` gives them: clipped to ``img_shape`` (the resized and, by a ``Pad``
    step, padded image, in network pixels), then divided by the scale factors. With ``masks``
    ((K, M, M) probabilities) also ``masks``: (N, H, W) bool at ``ori_shape`` (:func:`paste_masks`)."""
    keep = labels >= 0
    h, w = img_shape
    bboxes = dets[keep, :4].copy()
    bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, w)
    bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, h)
    w_scale, h_scale = scale
    result = dict(scores=dets[keep, 4], labels=labels[keep])
    if masks is None:
        # mmdet's box heads multiply by the float32 reciprocal scale factors
        bboxes *= np.float32([1 / w_scale, 1 / h_scale] * 2)
        return dict(result, bboxes=bboxes)
    # FCNMaskHead divides the boxes by the scale factors, pastes into them and returns them
    bboxes /= np.float32([w_scale, h_scale] * 2)
    return dict(result, bboxes=bboxes, masks=paste_masks(masks[keep], bboxes, *ori_shape, mask_thr))


def paste_masks(masks: np.ndarray, boxes: np.ndarray, img_h: int, img_w: int,
                threshold: float) -> np.ndarray:
    """(N, img_h, img_w) bool: each (M, M) probability map ``masks[i]`` stretched over its box
    ``boxes[i]`` (x1, y1, x2, y2 in image pixels) and thresholded, as mmdet's ``FCNMaskHead``
    does on the CPU: ``_do_paste_mask`` one box at a time (``skip_empty``: on the pixels at most
    one away from the box), each pixel centre sampled bilinearly from the map as ``grid_sample``
    does (``align_corners=False``, zeros outside), then ``>= threshold``. Vectorised per box, as
    fast as mmdet's CPU path; in the tests pixel for pixel mmdet's masks."""
    n, size_h, size_w = masks.shape
    out = np.zeros((n, img_h, img_w), bool)
    # two zero rows/columns each side: the corners of a sample outside the map read zeros
    padded = np.zeros((n, size_h + 4, size_w + 4), np.float32)
    padded[:, 2:-2, 2:-2] = masks
    one = np.float32(1)
    with np.errstate(divide='ignore', invalid='ignore'):  # empty boxes, as in mmdet
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(np.float32)):
            left, top = max(int(np.floor(x0)) - 1, 0), max(int(np.floor(y0)) - 1, 0)
            right, bottom = min(int(np.ceil(x1)) + 1, img_w), min(int(np.ceil(y1)) + 1, img_h)
            if right <= left or bottom <= top:
                continue
            ix, wx = _sample_positions(left, right, x0, x1, size_w)
            iy, wy = _sample_positions(top, bottom, y0, y1, size_h)
            # bilinear = linear along x (every map row at the pixels' x), then along y
            rows = padded[i][:, ix] * (one - wx) + padded[i][:, ix + 1] * wx
            values = rows[iy] * (one - wy)[:, None] + rows[iy + 1] * wy[:, None]
            out[i, top:bottom, left:right] = values >= threshold
    return out


def _sample_positions(start: int, end: int, lo: np.float32, hi: np.float32,
                      size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Where the pixel centres ``start..end-1`` of a box spanning ``lo..hi`` sample a map of
    ``size`` cells: the index of the lower neighbour in the map padded by 2, and the weight of the
    upper one (float32, the grid in ``_do_paste_mask``'s order of operations, unnormalised as
    ``grid_sample`` does)."""
    grid = ((np.arange(start, end, dtype=np.float32) + np.float32(0.5) - lo) / (hi - lo)
            * np.float32(2) - np.float32(1))
    grid[np.isinf(grid)] = 0  # mmdet's guard for empty boxes
    x = (grid + np.float32(1)) * np.float32(size / 2) - np.float32(0.5)
    lower = np.floor(x)
    index = np.clip(np.nan_to_num(lower, nan=-2), -2, size).astype(np.int64) + 2
    return index, x - lower


def color_of(label: int) -> Tuple[int, int, int]:
    """A BGR colour per class."""
    hsv = np.uint8([[[int(label) * 47 % 180, 220, 230]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw(img: np.ndarray, result: Dict[str, np.ndarray], classes: Sequence[str],
         score_thr: float) -> np.ndarray:
    """The image with every detection scoring at least ``score_thr``: its mask, if any, as a
    half-transparent fill, then its box, class and score."""
    img = img.copy()
    shown = np.flatnonzero(result['scores'] >= score_thr)
    if 'masks' in result:
        for i in shown:
            mask = result['masks'][i]
            img[mask] = (img[mask] * 0.5 + np.float32(color_of(result['labels'][i])) * 0.5
                         ).astype(np.uint8)
    for i in shown:
        box, score, label = result['bboxes'][i], result['scores'][i], int(result['labels'][i])
        color = color_of(label)
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, 2)
        cv2.putText(img, f'{classes[label]} {score:.2f}', (x1 + 2, max(y1 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------------------------ running
def detect(session, meta: Dict, paths: Sequence[str], batch_size: int = 1,
           log=print) -> Iterator[Tuple[str, Optional[np.ndarray], Optional[Dict], float]]:
    """Yield ``(path, image, result, seconds in the runtime)`` per path; unreadable images are
    skipped with a message (image and result None)."""
    pre = meta['preprocess']
    for start in range(0, len(paths), batch_size):
        chunk, images = [], []
        for path in paths[start:start + batch_size]:
            img = read_image(path)
            if img is None:
                log(f'skipped {path}: not a readable image')
                yield path, None, None, 0.0
                continue
            chunk.append(path)
            images.append(img)
        if not images:
            continue
        inputs = [preprocess(img, pre) for img in images]
        batch = pad_batch([x for x, _ in inputs], pre)
        tic = time.perf_counter()
        dets, labels, *masks = session.run({'input': batch})
        seconds = (time.perf_counter() - tic) / len(images)
        for i, (path, img) in enumerate(zip(chunk, images)):
            x, scale = inputs[i]
            yield path, img, to_image(dets[i], labels[i], scale, x.shape[1:],
                                      masks[0][i] if masks else None, img.shape[:2],
                                      meta['mask_thr']), seconds


# the detector's modules, as the exporter names their nodes ('/backbone/...'); any other node is
# post-processing (decoding, top-k, NMS) or a layout reorder that onnxruntime inserted
MODEL_PARTS = ('backbone', 'neck', 'bbox_head', 'rpn_head', 'roi_head')


def profile_summary(session) -> Dict[str, List[Tuple[str, float]]]:
    """Stop onnxruntime's profiler; the node time's shares by ``operator`` type and by ``part`` of the
    model (:data:`MODEL_PARTS`, else ``other``), each as (name, share) pairs, largest first."""
    with open(session.session.end_profiling()) as f:
        events = json.load(f)
    shares: Dict[str, Dict[str, float]] = {'operator': {}, 'part': {}}
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            part = event['name'].split('/')[1] if event['name'].startswith('/') else ''
            for key, name in (('operator', event['args']['op_name']),
                              ('part', part if part in MODEL_PARTS else 'other')):
                shares[key][name] = shares[key].get(name, 0.) + event['dur']
    return {key: sorted(((name, t / (sum(times.values()) or 1.)) for name, t in times.items()),
                        key=lambda x: -x[1]) for key, times in shares.items()}


def coco_records(image_id: int, result: Dict[str, np.ndarray], cat_ids: Sequence[int],
                 metrics: Sequence[str] = ('bbox', )) -> Dict[str, List[Dict]]:
    """COCO result records of one image per metric, as ``CocoMetric`` writes them
    (``results2json``): xywh boxes; for ``segm`` the same records with the mask, RLE-encoded by
    pycocotools (``encode_mask_results``), ``counts`` as str."""
    boxes = []
    for (x1, y1, x2, y2), score, label in zip(result['bboxes'].tolist(), result['scores'].tolist(),
                                              result['labels'].tolist()):
        boxes.append(dict(image_id=image_id, bbox=[x1, y1, x2 - x1, y2 - y1], score=score,
                          category_id=cat_ids[label]))
    records = dict(bbox=boxes)
    if 'segm' in metrics:
        from pycocotools import mask as mask_util
        records['segm'] = []
        for record, mask in zip(boxes, result['masks']):
            rle = mask_util.encode(np.asfortranarray(mask[:, :, None], dtype=np.uint8))[0]
            rle['counts'] = rle['counts'].decode()
            records['segm'].append(dict(record, segmentation=rle))
    return {metric: records[metric] for metric in metrics}


def read_annotations(ann_file: str, img_dir: str, classes: Sequence[str]) -> Tuple[Dict, List[int]]:
    """The COCO annotation dict and the category id of every class; checks that it fits ``img_dir``."""
    try:
        with open(ann_file) as f:
            ann = json.load(f)
        images, categories = ann['images'], ann['categories']
        ann['annotations']
    except FileNotFoundError:
        raise UserError(f'{ann_file} not found: pass the COCO annotation file of {img_dir}') from None
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f'{ann_file} is not a COCO annotation file ({type(err).__name__}: {err}): '
                        'pass an instances_*.json with images, annotations and categories') from None
    by_name = {c['name']: c['id'] for c in categories}
    unknown = [c for c in classes if c not in by_name]
    if unknown:
        raise UserError(f"{ann_file} has no categories {unknown[:5]} of the model's {len(classes)} "
                        f"classes (it has {sorted(by_name)[:5]}...): evaluate with the annotation "
                        'file of the dataset the model was trained for')
    missing = [im['file_name'] for im in images
               if not os.path.isfile(os.path.join(img_dir, im['file_name']))]
    if missing:
        raise UserError(f'{len(missing)} of the {len(images)} images listed in {ann_file} are not in '
                        f'{img_dir} (e.g. {missing[0]}): pass the image folder this annotation file '
                        'describes')
    return ann, [by_name[c] for c in classes]


def eval_metrics(requested: Optional[Sequence[str]], model: str, has_masks: bool, ann_file: str,
                 ann: Dict) -> List[str]:
    """The COCO metrics to compute: ``--metric``, else bbox and, for a model with masks, segm
    (bbox only, said in one line, where the annotations have no segmentation)."""
    lacking = sum('segmentation' not in a for a in ann['annotations'])
    lack = (f'{lacking} of the {len(ann["annotations"])} annotations in {ann_file} have no '
            'segmentation')
    if not requested:
        if has_masks and lacking:
            print(f'note: {lack}: evaluating bbox only (segm needs every object\'s mask)')
        return ['bbox', 'segm'] if has_masks and not lacking else ['bbox']
    if 'segm' in requested and not has_masks:
        raise UserError(f'--metric segm needs masks, but {model} is a boxes-only detector (outputs '
                        f'{", ".join(BOX_OUTPUTS)}): evaluate it with --metric bbox, or pass a Mask '
                        'R-CNN exported with export_onnx.py --end2end')
    if 'segm' in requested and lacking:
        raise UserError(f'--metric segm needs the mask of every object, but {lack}: evaluate with '
                        '--metric bbox, or pass an instance annotation file (instances_*.json)')
    return list(dict.fromkeys(requested))


def coco_evaluate(ann_file: str, records: Dict[str, List[Dict]], cat_ids: Sequence[int],
                  quiet: bool = False) -> Dict[str, np.ndarray]:
    """pycocotools evaluation of each metric's records with mmdet CocoMetric's settings (for segm
    without the records' boxes, so areas are the masks'); prints the tables (not when ``quiet``),
    returns the stats."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
        coco = COCO(ann_file)
    stats = {}
    for metric, mine in records.items():
        if not mine:
            stats[metric] = np.zeros(12)
            continue
        if metric == 'segm':
            mine = [{k: v for k, v in r.items() if k != 'bbox'} for r in mine]
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(coco, coco.loadRes(mine), metric)
            evaluator.params.catIds = list(cat_ids)
            evaluator.params.imgIds = coco.getImgIds()
            evaluator.params.maxDets = list(COCO_MAX_DETS)
            evaluator.params.iouThrs = COCO_IOU_THRS
            evaluator.evaluate()
            evaluator.accumulate()
        with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
            print(f'COCO {metric}:')
            evaluator.summarize()
        stats[metric] = evaluator.stats
    return stats


class CocoResults:
    """The COCO result records of an evaluation run, gathered image by image (:func:`coco_records`)
    for the images that ``ann`` lists in ``img_dir``, and their scores (:func:`coco_evaluate`)."""

    def __init__(self, ann_file: str, ann: Dict, img_dir: str, cat_ids: Sequence[int],
                 metrics: Sequence[str]):
        self.ann_file, self.cat_ids = ann_file, list(cat_ids)
        self.image_ids = {os.path.join(img_dir, im['file_name']): im['id'] for im in ann['images']}
        self.records: Dict[str, List[Dict]] = {metric: [] for metric in metrics}

    @property
    def paths(self) -> List[str]:
        """The images to run, in the annotation file's order."""
        return list(self.image_ids)

    def add(self, path: str, result: Dict[str, np.ndarray]) -> None:
        for metric, mine in coco_records(self.image_ids[path], result, self.cat_ids,
                                         list(self.records)).items():
            self.records[metric] += mine

    def evaluate(self, quiet: bool = False) -> Dict[str, np.ndarray]:
        return coco_evaluate(self.ann_file, self.records, self.cat_ids, quiet)


def evaluate(session, meta: Dict, ann_file: str, img_dir: str,
             metrics: Sequence[str] = ('bbox', )) -> Dict[str, np.ndarray]:
    """The COCO stats of a loaded model (:func:`load_model`) on the images of ``ann_file`` in
    ``img_dir``: what ``--eval`` computes, without pictures, result files or tables (for callers
    that compare models, e.g. a float graph and its INT8 copy)."""
    ann, cat_ids = read_annotations(ann_file, img_dir, meta['classes'])
    results = CocoResults(ann_file, ann, img_dir, cat_ids, metrics)
    for path, _, result, _ in detect(session, meta, results.paths,
                                     log=lambda m: print(m, file=sys.stderr)):
        if result is not None:
            results.add(path, result)
    return results.evaluate(quiet=True)


def image_paths(source: str) -> List[str]:
    if os.path.isdir(source):
        return sorted(os.path.join(source, n) for n in os.listdir(source)
                      if n.lower().endswith(IMAGE_EXTENSIONS))
    if os.path.isfile(source):
        return [source]
    raise UserError(f'{source} not found: pass an image or a folder of images')


def output_path(out_dir: str, path: str, root: str) -> str:
    rel = os.path.relpath(path, root) if os.path.isdir(root) else os.path.basename(path)
    return os.path.join(out_dir, os.path.splitext(rel)[0] + '.png')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('model', help='.onnx written by export_onnx.py --end2end')
    parser.add_argument('source', help='an image or a folder of images (with --eval: the folder of '
                        'the annotation file)')
    parser.add_argument('--out-dir', default='onnx_results', help='where pictures and results go')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw boxes scoring at least this')
    parser.add_argument('--eval', metavar='ANN_JSON', help='COCO annotation file: write '
                        f'{RESULTS_FILES["bbox"]} (and {RESULTS_FILES["segm"]}) and print the COCO '
                        'metrics')
    parser.add_argument('--metric', nargs='+', choices=list(RESULTS_FILES),
                        help='with --eval: what to evaluate (default: bbox, and segm for a model '
                        'with masks where the annotations have segmentations)')
    parser.add_argument('--no-vis', action='store_true', help='write no pictures')
    parser.add_argument('--runtime', choices=RUNTIMES, default='onnxruntime',
                        help='onnxruntime, or OpenVINO (optional: pip install openvino)')
    parser.add_argument('--precision', choices=OPENVINO_PRECISIONS,
                        help="OpenVINO's inference precision (default f32; bf16 where the CPU has it)")
    parser.add_argument('--threads', type=int, default=0,
                        help="threads: onnxruntime's intra-op, OpenVINO's INFERENCE_NUM_THREADS "
                        '(0: auto)')
    parser.add_argument('--provider', default=DEFAULT_PROVIDER, help='onnxruntime execution provider')
    parser.add_argument('--batch-size', type=int, default=1, help='images per run')
    parser.add_argument('--overwrite', action='store_true', help='replace files already in --out-dir')
    parser.add_argument('--profile', action='store_true',
                        help="onnxruntime's profiler: print each operator type's share of the run "
                        'time (the trace goes to --out-dir)')
    return parser.parse_args(argv)


def check_runtime_args(args: argparse.Namespace) -> None:
    """Options of one runtime given with the other."""
    if args.runtime == 'onnxruntime' and args.precision:
        raise UserError(f"--precision {args.precision} sets OpenVINO's inference precision: add "
                        '--runtime openvino (onnxruntime runs the graph in its own precision)')
    if args.runtime == 'openvino':
        option = ('--profile' if args.profile else
                  '--provider' if args.provider != DEFAULT_PROVIDER else None)
        if option:
            raise UserError(f"{option} is onnxruntime's: drop it, or use --runtime onnxruntime")


def run(args: argparse.Namespace) -> Optional[Dict[str, np.ndarray]]:
    """The command line tool; returns the COCO stats of each metric with ``--eval``."""
    if args.batch_size < 1:
        raise UserError(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.metric and not args.eval:
        raise UserError('--metric chooses what --eval computes: pass --eval ANN_JSON too')
    check_runtime_args(args)
    if args.profile:
        os.makedirs(args.out_dir, exist_ok=True)
    session, meta = load_model(args.model, args.threads, args.provider,
                               os.path.join(args.out_dir, 'ort_profile') if args.profile else None,
                               args.runtime, args.precision or 'f32')
    classes = meta['classes']
    if args.eval:
        if not os.path.isdir(args.source):
            raise UserError(f'with --eval, {args.source} must be the image folder of {args.eval}')
        ann, cat_ids = read_annotations(args.eval, args.source, classes)
        metrics = eval_metrics(args.metric, args.model, meta['mask_thr'] is not None, args.eval, ann)
        results = CocoResults(args.eval, ann, args.source, cat_ids, metrics)
        paths = results.paths
    else:
        paths = image_paths(args.source)
        if not paths:
            raise UserError(f'{args.source} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
    targets = [] if args.no_vis else [output_path(args.out_dir, p, args.source) for p in paths]
    targets += [os.path.join(args.out_dir, RESULTS_FILES[m]) for m in metrics] if args.eval else []
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not args.overwrite:
        raise UserError(f'{existing[0]} already exists ({len(existing)} of the files this run writes '
                        'do): choose another --out-dir or pass --overwrite')

    seconds, done, skipped = [], 0, []
    for path, img, result, sec in detect(session, meta, paths, args.batch_size,
                                         log=lambda m: print(m, file=sys.stderr)):
        if result is None:
            skipped.append(path)
            continue
        done += 1
        seconds.append(sec)
        if args.eval:
            results.add(path, result)
        if not args.no_vis:
            target = output_path(args.out_dir, path, args.source)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cv2.imwrite(target, draw(img, result, classes, args.score_thr))
        shown = result['scores'] >= args.score_thr
        if not args.eval:
            found = ', '.join(f'{classes[int(label)]} {score:.2f}' for label, score in
                              zip(result['labels'][shown], result['scores'][shown]))
            print(f'{path}: {int(shown.sum())} detections >= {args.score_thr}'
                  + (f' ({found})' if found else ''))
    if not done:
        raise UserError(f'none of the {len(paths)} images could be read')
    print(f'{done} images, {1e3 * float(np.median(seconds)):.1f} ms per image in {session.name} '
          f'(median; batch {args.batch_size})'
          + (f'; skipped {len(skipped)} unreadable' if skipped else ''))
    if not args.no_vis:
        print(f'pictures in {args.out_dir}/')
    if args.profile:
        for key, shares in profile_summary(session).items():
            print(f'onnxruntime node time by {key}: ' + ', '.join(
                f'{name} {100 * share:.1f}%' for name, share in shares if share >= 0.005))
    if not args.eval:
        return None
    os.makedirs(args.out_dir, exist_ok=True)
    for metric, mine in results.records.items():
        with open(os.path.join(args.out_dir, RESULTS_FILES[metric]), 'w') as f:
            json.dump(mine, f)
        print(f'{len(mine)} {metric} results written to '
              f'{os.path.join(args.out_dir, RESULTS_FILES[metric])}')
    stats = results.evaluate()
    for metric, values in stats.items():
        print(f'{metric}_mAP: {values[0]:.4f}  {metric}_mAP_50: {values[1]:.4f}  '
              f'{metric}_mAP_75: {values[2]:.4f}')
    return stats


def main(argv: Optional[List[str]] = None) -> Optional[Dict[str, np.ndarray]]:
    args = parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
