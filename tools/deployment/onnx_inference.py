"""Detect objects with an end-to-end ONNX detector, without PyTorch: onnxruntime, numpy and OpenCV.

The model is one exported by ``export_onnx.py CONFIG --checkpoint CKPT --end2end``: image batch in,
``dets`` (B, K, 5) and ``labels`` (B, K) out (padding rows: score 0, label -1). Everything else this
tool needs is in the file's metadata: the config's test preprocessing (mmdet's ``Resize``, the
pipeline's ``Pad`` if any, e.g. RTMDet's to 640x640 with 114, and the data preprocessor, reproduced
here exactly), the class names and the output convention. Boxes are clipped to the padded image
and mapped back to the original one as mmdet's ``predict(rescale=True)`` does.

This file is self-contained: copy it and the ``.onnx`` to a machine with ``pip install onnxruntime
opencv-python-headless numpy`` (and ``pycocotools`` for ``--eval``) and run it there::

    python onnx_inference.py model.onnx images/ --out-dir detections/
    python onnx_inference.py model.onnx data/coco/val2017 \
        --eval data/coco/annotations/instances_val2017.json

Each image gets ``<out-dir>/<name>.png`` with the boxes scoring at least ``--score-thr`` drawn. With
``--eval`` every detection (down to the config's ``test_cfg.score_thr``, as ``tools/test.py``) goes
into ``<out-dir>/results.bbox.json`` and is scored with pycocotools the way mmdet's ``CocoMetric``
does (maxDets 100/300/1000, IoU 0.50:0.95). Images that cannot be read are skipped and named; files
already in ``--out-dir`` are never overwritten unless ``--overwrite``.
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
RESULTS_FILE = 'results.bbox.json'
# mmdet's CocoMetric defaults: proposal_nums and IoU thresholds
COCO_MAX_DETS = [100, 300, 1000]
COCO_IOU_THRS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)


class UserError(Exception):
    """A problem with the user's input; the message names it and the fix."""


# ------------------------------------------------------------------------------------ the model
def load_model(path: str, threads: int = 0, provider: str = 'CPUExecutionProvider',
               profile_prefix: Optional[str] = None):
    """An onnxruntime session for ``path`` and the deployment metadata stored in it.

    With ``profile_prefix``, onnxruntime's profiler records every node run (:func:`profile_summary`).
    """
    import onnxruntime as ort
    if not os.path.isfile(path):
        raise UserError(f'{path} not found: pass the .onnx written by export_onnx.py --end2end')
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
        session = ort.InferenceSession(path, options, providers=[provider])
    except Exception as err:  # onnxruntime raises its own exception types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f'{path} is not a model onnxruntime can load ({reason[:200]}): '
                        're-export it with export_onnx.py --end2end') from None
    props = session.get_modelmeta().custom_metadata_map
    outputs = [o.name for o in session.get_outputs()]
    if 'preprocess' not in props or outputs != ['dets', 'labels']:
        raise UserError(f'{path} is not an end-to-end detector (outputs {outputs}, no preprocessing '
                        'metadata): export it with export_onnx.py CONFIG --checkpoint CKPT --end2end')
    meta = dict(preprocess=json.loads(props['preprocess']), classes=json.loads(props['classes']))
    return session, meta


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
             img_shape: Tuple[int, int]) -> Dict[str, np.ndarray]:
    """One image's detections in its original pixels, padding rows dropped, as
    ``predict(rescale=True)`` gives them: clipped to ``img_shape`` (the resized and, by a ``Pad``
    step, padded image, in network pixels), then divided by the scale factors."""
    keep = labels >= 0
    h, w = img_shape
    bboxes = dets[keep, :4].copy()
    bboxes[:, 0::2] = bboxes[:, 0::2].clip(0, w)
    bboxes[:, 1::2] = bboxes[:, 1::2].clip(0, h)
    w_scale, h_scale = scale
    # mmdet multiplies by the float32 reciprocal scale factors
    bboxes *= np.float32([1 / w_scale, 1 / h_scale] * 2)
    return dict(bboxes=bboxes, scores=dets[keep, 4], labels=labels[keep])


def draw(img: np.ndarray, result: Dict[str, np.ndarray], classes: Sequence[str],
         score_thr: float) -> np.ndarray:
    """The image with every box scoring at least ``score_thr`` and its class and score."""
    img = img.copy()
    for box, score, label in zip(result['bboxes'], result['scores'], result['labels']):
        if score < score_thr:
            continue
        hue = int(label) * 47 % 180
        hsv = np.uint8([[[hue, 220, 230]]])
        color = tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), color, 2)
        cv2.putText(img, f'{classes[int(label)]} {score:.2f}', (x1 + 2, max(y1 - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    return img


# ------------------------------------------------------------------------------------ running
def detect(session, meta: Dict, paths: Sequence[str], batch_size: int = 1,
           log=print) -> Iterator[Tuple[str, Optional[np.ndarray], Optional[Dict], float]]:
    """Yield ``(path, image, result, seconds in onnxruntime)`` per path; unreadable images are
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
        dets, labels = session.run(None, {'input': batch})
        seconds = (time.perf_counter() - tic) / len(images)
        for i, (path, img) in enumerate(zip(chunk, images)):
            x, scale = inputs[i]
            yield path, img, to_image(dets[i], labels[i], scale, x.shape[1:]), seconds


def profile_summary(session) -> List[Tuple[str, float]]:
    """Stop onnxruntime's profiler; (operator type, share of the node time) pairs, largest first."""
    with open(session.end_profiling()) as f:
        events = json.load(f)
    by_op: Dict[str, float] = {}
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time'):
            op = event['args']['op_name']
            by_op[op] = by_op.get(op, 0.) + event['dur']
    total = sum(by_op.values()) or 1.
    return sorted(((op, t / total) for op, t in by_op.items()), key=lambda x: -x[1])


def coco_records(image_id: int, result: Dict[str, np.ndarray], cat_ids: Sequence[int]) -> List[Dict]:
    """COCO result records of one image (``CocoMetric.results2json``: xywh boxes)."""
    records = []
    for (x1, y1, x2, y2), score, label in zip(result['bboxes'].tolist(), result['scores'].tolist(),
                                              result['labels'].tolist()):
        records.append(dict(image_id=image_id, bbox=[x1, y1, x2 - x1, y2 - y1], score=score,
                            category_id=cat_ids[label]))
    return records


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


def coco_evaluate(ann_file: str, records: List[Dict], cat_ids: Sequence[int]) -> np.ndarray:
    """pycocotools bbox evaluation with mmdet CocoMetric's settings; prints the table, returns stats."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools' loading chatter
        coco = COCO(ann_file)
        if not records:
            return np.zeros(12)
        results = coco.loadRes(records)
    evaluator = COCOeval(coco, results, 'bbox')
    evaluator.params.catIds = list(cat_ids)
    evaluator.params.imgIds = coco.getImgIds()
    evaluator.params.maxDets = list(COCO_MAX_DETS)
    evaluator.params.iouThrs = COCO_IOU_THRS
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    evaluator.summarize()
    return evaluator.stats


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
                        f'{RESULTS_FILE} and print the COCO bbox metrics')
    parser.add_argument('--no-vis', action='store_true', help='write no pictures')
    parser.add_argument('--threads', type=int, default=0, help='onnxruntime intra-op threads (0: auto)')
    parser.add_argument('--provider', default='CPUExecutionProvider',
                        help='onnxruntime execution provider')
    parser.add_argument('--batch-size', type=int, default=1, help='images per onnxruntime run')
    parser.add_argument('--overwrite', action='store_true', help='replace files already in --out-dir')
    parser.add_argument('--profile', action='store_true',
                        help="onnxruntime's profiler: print each operator type's share of the run "
                        'time (the trace goes to --out-dir)')
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Optional[np.ndarray]:
    """The command line tool; returns the COCO stats with ``--eval``."""
    if args.batch_size < 1:
        raise UserError(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.profile:
        os.makedirs(args.out_dir, exist_ok=True)
    session, meta = load_model(args.model, args.threads, args.provider,
                               os.path.join(args.out_dir, 'ort_profile') if args.profile else None)
    classes = meta['classes']
    if args.eval:
        if not os.path.isdir(args.source):
            raise UserError(f'with --eval, {args.source} must be the image folder of {args.eval}')
        ann, cat_ids = read_annotations(args.eval, args.source, classes)
        paths = [os.path.join(args.source, im['file_name']) for im in ann['images']]
        image_ids = dict(zip(paths, (im['id'] for im in ann['images'])))
    else:
        paths = image_paths(args.source)
        if not paths:
            raise UserError(f'{args.source} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
    targets = [] if args.no_vis else [output_path(args.out_dir, p, args.source) for p in paths]
    targets += [os.path.join(args.out_dir, RESULTS_FILE)] if args.eval else []
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not args.overwrite:
        raise UserError(f'{existing[0]} already exists ({len(existing)} of the files this run writes '
                        'do): choose another --out-dir or pass --overwrite')

    records, seconds, done, skipped = [], [], 0, []
    for path, img, result, sec in detect(session, meta, paths, args.batch_size,
                                         log=lambda m: print(m, file=sys.stderr)):
        if result is None:
            skipped.append(path)
            continue
        done += 1
        seconds.append(sec)
        if args.eval:
            records += coco_records(image_ids[path], result, cat_ids)
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
    print(f'{done} images, {1e3 * float(np.median(seconds)):.1f} ms per image in onnxruntime '
          f'(median; {args.provider}, batch {args.batch_size})'
          + (f'; skipped {len(skipped)} unreadable' if skipped else ''))
    if not args.no_vis:
        print(f'pictures in {args.out_dir}/')
    if args.profile:
        print('onnxruntime node time by operator: ' + ', '.join(
            f'{op} {100 * share:.1f}%' for op, share in profile_summary(session) if share >= 0.005))
    if not args.eval:
        return None
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, RESULTS_FILE), 'w') as f:
        json.dump(records, f)
    print(f'{len(records)} detections written to {os.path.join(args.out_dir, RESULTS_FILE)}')
    stats = coco_evaluate(args.eval, records, cat_ids)
    print(f'bbox_mAP: {stats[0]:.4f}  bbox_mAP_50: {stats[1]:.4f}  bbox_mAP_75: {stats[2]:.4f}')
    return stats


def main(argv: Optional[List[str]] = None) -> Optional[np.ndarray]:
    args = parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f'error: {err}', file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
