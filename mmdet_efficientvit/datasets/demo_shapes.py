"""DemoShapes: a seeded synthetic COCO-format detection dataset for the CPU demo and the tests.

Every image shows 1-5 filled shapes (four classes, varied size, aspect ratio, rotation and colour,
partly overlapping) on a textured background (colour gradient, stripes and pixel noise). Each object
is a polygon: it is drawn anti-aliased, its COCO ``segmentation`` is that polygon, its ``bbox`` the
polygon's extent and its ``area`` the polygon's area, so the annotations are exact by construction.

Generation is a pure function of ``(num_train, num_val, img_size, seed)``: image ``i`` of a split
uses its own random stream ``(seed, split, i)``. ``generate_demo_shapes`` writes::

    root/train.json  root/val.json  root/train/*.jpg  root/val/*.jpg  root/meta.json

``meta.json`` is written last and records the parameters; a second call with the same parameters and
complete files returns at once, a call with other parameters regenerates the folder.

CLI: ``python -m mmdet_efficientvit.datasets.demo_shapes --root data/demo_shapes``.
"""
import argparse
import json
import os
import os.path as osp
import shutil
from typing import Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

DEMO_SHAPES_CLASSES = ('rectangle', 'ellipse', 'triangle', 'star')

# Bumped whenever the drawing changes, so stale folders are regenerated rather than silently reused.
GENERATOR_VERSION = 1
SPLITS = ('train', 'val')
META_FILE = 'meta.json'

# Object long side as a fraction of the image's short side; objects stay large enough for the
# stride-8 level of the demo detector.
MIN_REL_SIZE, MAX_REL_SIZE = 0.14, 0.5
MAX_OBJECTS = 5
MAX_PAIR_IOU = 0.3  # overlaps are allowed (and common) but no object hides another
MIN_CONTRAST = 80.0  # Euclidean BGR distance between an object and the background under it


def _polygon(cls: str, w: float, h: float, angle: float) -> np.ndarray:
    """Vertices (N, 2) of a shape centred on the origin, fitting a w x h box before rotation."""
    if cls == 'rectangle':
        pts = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)
    elif cls == 'ellipse':
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([np.cos(t), np.sin(t)], axis=1)
    elif cls == 'triangle':
        pts = np.array([[0, -1], [1, 1], [-1, 1]], dtype=np.float64)
    elif cls == 'star':
        t = np.linspace(0, 2 * np.pi, 10, endpoint=False) - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        pts = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    else:
        raise ValueError(f'unknown DemoShapes class {cls!r}; expected one of {DEMO_SHAPES_CLASSES}')
    pts = pts * np.array([w / 2, h / 2])
    c, s = np.cos(angle), np.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Muted, textured background: two-colour gradient + faint stripes + pixel noise (uint8 BGR)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    c0, c1 = rng.uniform(60, 190, size=(2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(theta) * xx + np.sin(theta) * yy) / max(width, height)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    img = c0 + (c1 - c0) * ramp[..., None]
    period = rng.uniform(6, 24)
    phi = rng.uniform(0, 2 * np.pi)
    stripes = np.sin((np.cos(phi) * xx + np.sin(phi) * yy) * 2 * np.pi / period)
    img += rng.uniform(5, 20) * stripes[..., None]
    img += rng.normal(0, rng.uniform(3, 12), size=img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator, under: np.ndarray) -> Tuple[int, int, int]:
    """A saturated colour (BGR) that stands out from ``under``, the mean colour it is drawn on."""
    for _ in range(10):
        hsv = np.array([[[rng.integers(0, 180), rng.integers(150, 256), rng.integers(140, 256)]]],
                       dtype=np.uint8)
        bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
        if np.linalg.norm(bgr - under) >= MIN_CONTRAST:
            break
    return tuple(int(v) for v in bgr)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two xywh boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def render_image(rng: np.random.Generator, width: int,
                 height: int) -> Tuple[np.ndarray, List[dict]]:
    """Draw one image; returns it (uint8 BGR) and its objects (category_id, bbox, area, polygon)."""
    img = _background(rng, width, height)
    short = min(width, height)
    objects: List[dict] = []
    for _ in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        for _attempt in range(20):
            label = int(rng.integers(len(DEMO_SHAPES_CLASSES)))
            cls = DEMO_SHAPES_CLASSES[label]
            long_side = rng.uniform(MIN_REL_SIZE, MAX_REL_SIZE) * short
            aspect = float(np.exp(rng.uniform(np.log(0.4), np.log(2.5))))
            if cls == 'star':
                aspect = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            w, h = ((long_side, long_side / aspect) if aspect >= 1
                    else (long_side * aspect, long_side))
            angle = 0.0 if cls == 'ellipse' else rng.uniform(-np.pi / 12, np.pi / 12)
            pts = _polygon(cls, w, h, angle)
            lo, hi = pts.min(0), pts.max(0)
            span = hi - lo
            if span[0] >= width - 2 or span[1] >= height - 2:
                continue
            centre = np.array([rng.uniform(1 - lo[0], width - 1 - hi[0]),
                               rng.uniform(1 - lo[1], height - 1 - hi[1])])
            pts = pts + centre
            x0, y0 = lo + centre
            bbox = [float(x0), float(y0), float(span[0]), float(span[1])]
            if all(_iou(bbox, o['bbox']) <= MAX_PAIR_IOU for o in objects):
                break
        else:
            continue  # no room left for another object
        under = img[int(y0):int(np.ceil(y0 + span[1])),
                    int(x0):int(np.ceil(x0 + span[0]))].reshape(-1, 3).mean(0)
        fixed = np.round(pts * 16).astype(np.int32)  # 4 fractional bits, drawn anti-aliased
        cv2.fillPoly(img, [fixed], _colour(rng, under), lineType=cv2.LINE_AA, shift=4)
        objects.append(dict(category_id=label + 1, bbox=[round(v, 2) for v in bbox],
                            area=round(_polygon_area(pts), 2),
                            segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]]))
    return img, objects


def _build_split(root: str, split: str, num_images: int, width: int, height: int,
                 seed: int) -> dict:
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations = [], []
    for idx in range(num_images):
        rng = np.random.default_rng([seed, SPLITS.index(split), idx])
        img, objects = render_image(rng, width, height)
        file_name = f'{idx:06d}.jpg'
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise RuntimeError(f'OpenCV could not encode {split}/{file_name} as JPEG')
        with open(osp.join(root, split, file_name), 'wb') as f:
            f.write(buf.tobytes())
        image_id = idx + 1
        images.append(dict(id=image_id, file_name=file_name, width=width, height=height))
        for obj in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, iscrowd=0, **obj))
    categories = [dict(id=i + 1, name=name, supercategory='shape')
                  for i, name in enumerate(DEMO_SHAPES_CLASSES)]
    return dict(info=dict(description=f'DemoShapes {split} (synthetic, seed {seed})',
                          version=str(GENERATOR_VERSION)),
                images=images, annotations=annotations, categories=categories)


def _normalise_size(img_size: Union[int, Sequence[int]]) -> Tuple[int, int]:
    if isinstance(img_size, int):
        img_size = (img_size, img_size)
    if len(img_size) != 2 or any(int(s) != s or s < 32 for s in img_size):
        raise ValueError(
            f'img_size must be an int or (width, height) of ints >= 32, got {img_size!r}')
    return int(img_size[0]), int(img_size[1])


def _is_complete(root: str, meta: dict) -> bool:
    if not all(osp.isfile(osp.join(root, f'{s}.json')) for s in SPLITS):
        return False
    for split in SPLITS:
        folder = osp.join(root, split)
        want = {f'{i:06d}.jpg' for i in range(meta[f'num_{split}'])}
        if not osp.isdir(folder) or not want.issubset(os.listdir(folder)):
            return False
    return True


def generate_demo_shapes(root: str, num_train: int, num_val: int,
                         img_size: Union[int, Sequence[int]], seed: int = 0) -> Dict:
    """Write the DemoShapes dataset under ``root`` unless an identical, complete copy is there.

    Args:
        root: output folder (created if missing).
        num_train, num_val: number of images in each split (>= 1).
        img_size: image side, or (width, height), in pixels.
        seed: the dataset is a pure function of the arguments; another seed gives other images.

    Returns:
        dict with ``root``, ``train_ann``, ``val_ann``, ``train_img_dir``, ``val_img_dir`` (paths),
        ``classes``, ``num_train``, ``num_val``, ``img_size`` ((w, h)), ``seed`` and ``generated``
        (False when an existing copy was reused).

    Raises:
        FileExistsError: ``root`` holds files that are not a DemoShapes dataset (nothing is
            deleted).
    """
    width, height = _normalise_size(img_size)
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got {num_train} and {num_val}')
    meta = dict(generator_version=GENERATOR_VERSION, num_train=int(num_train),
                num_val=int(num_val), img_size=[width, height], seed=int(seed),
                classes=list(DEMO_SHAPES_CLASSES))
    result = dict(root=root, train_ann=osp.join(root, 'train.json'),
                  val_ann=osp.join(root, 'val.json'), train_img_dir=osp.join(root, 'train'),
                  val_img_dir=osp.join(root, 'val'), classes=DEMO_SHAPES_CLASSES,
                  num_train=meta['num_train'], num_val=meta['num_val'], img_size=(width, height),
                  seed=meta['seed'])

    meta_path = osp.join(root, META_FILE)
    if osp.isfile(meta_path):
        with open(meta_path) as f:
            old = json.load(f)
        if old == meta and _is_complete(root, meta):
            return dict(result, generated=False)
        # Ours but stale or incomplete: rebuild from scratch.
        os.remove(meta_path)
        for name in SPLITS:
            shutil.rmtree(osp.join(root, name), ignore_errors=True)
    elif osp.isdir(root) and os.listdir(root):
        # Either a foreign folder or a generation that died before writing meta.json.
        ours = set(SPLITS) | {f'{s}.json' for s in SPLITS}
        if not set(os.listdir(root)).issubset(ours):
            raise FileExistsError(
                f'{root!r} is not empty and is not a DemoShapes folder (no {META_FILE}); '
                'choose an empty or new --root, or delete that folder yourself.')
        for name in SPLITS:
            shutil.rmtree(osp.join(root, name), ignore_errors=True)

    os.makedirs(root, exist_ok=True)
    for split in SPLITS:
        coco = _build_split(root, split, meta[f'num_{split}'], width, height, meta['seed'])
        with open(osp.join(root, f'{split}.json'), 'w') as f:
            json.dump(coco, f)
    with open(meta_path, 'w') as f:  # last: its presence marks a complete dataset
        json.dump(meta, f, indent=1)
    return dict(result, generated=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description='Generate the synthetic DemoShapes COCO dataset.')
    parser.add_argument('--root', default='data/demo_shapes', help='output folder')
    parser.add_argument('--num-train', type=int, default=800)
    parser.add_argument('--num-val', type=int, default=200)
    parser.add_argument('--img-size', type=int, default=256, help='square image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    out = generate_demo_shapes(args.root, args.num_train, args.num_val, args.img_size, args.seed)
    state = 'generated' if out['generated'] else 'already complete, reused'
    print(f"DemoShapes {state}: {out['num_train']} train + {out['num_val']} val images "
          f"({out['img_size'][0]}x{out['img_size'][1]}) under {out['root']}")


if __name__ == '__main__':
    main()
