"""Detect objects in an image or a folder of images and save each picture with its detections as PNG.

    python tools/demo.py IMG_OR_DIR CONFIG CHECKPOINT [--out-dir outputs] [--score-thr 0.5] \
        [--dedup-iou 0.7] [--device cpu] [--max-images N] [--cfg-options k=v ...]

Built on mmdet's ``DetInferencer``, so every detector its config builds works (RetinaNet, Mask R-CNN and
other two-stage models; masks are drawn too). ``OUT_DIR/<image stem>.png`` has the input's size.
CONFIG may be a file or a shipped config's name (``mmdet_efficientvit::...``).

Legible pictures: only detections scoring above ``--score-thr`` are drawn, and where boxes of
different classes cover the same object (IoU above ``--dedup-iou``), only the best-scoring one is
drawn, so labels do not pile up on one corner. This de-duplication is for drawing only: the model's
outputs, and any evaluation, are untouched.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import mmcv
from mmengine.config import DictAction

from mmdet_efficientvit.apis.inference import PytorchDetector, draw_detections, for_drawing
from mmdet_efficientvit.resources import load_config
from mmdet_efficientvit.tools_support import short_errors

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw a detector\'s detections on images (PNG out).')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='model config file (or mmdet_efficientvit::<name>)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', default='outputs', help='folder for the PNG pictures')
    parser.add_argument('--score-thr', type=float, default=0.5, help='draw detections scoring above')
    parser.add_argument('--dedup-iou', type=float, default=0.7,
                        help='drawing only: of boxes (any classes) overlapping by more than this IoU, '
                        'draw the best-scoring one; 1 draws all')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--max-images', type=int, default=None,
                        help='only the first N images of a folder (sorted by name)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    return parser.parse_args(argv)


def list_images(inputs: str, max_images: Optional[int] = None) -> List[str]:
    """The image files named by ``inputs`` (a file, or a folder's images sorted by name)."""
    if osp.isfile(inputs):
        return [inputs]
    if not osp.isdir(inputs):
        raise FileNotFoundError(f'{inputs!r} is neither an image file nor a folder')
    files = sorted(osp.join(inputs, f) for f in os.listdir(inputs)
                   if f.lower().endswith(IMG_EXTENSIONS))
    if not files:
        raise FileNotFoundError(f'no images ({", ".join(IMG_EXTENSIONS)}) in folder {inputs!r}')
    return files[:max_images]


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    images = list_images(args.inputs, args.max_images)
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    detector = PytorchDetector(cfg, args.checkpoint, args.device)

    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path in images:
        pred = detector(path)
        drawn = for_drawing(pred, args.score_thr, args.dedup_iou)
        picture = draw_detections(detector.visualizer, mmcv.imread(path), drawn, args.score_thr)
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        mmcv.imwrite(mmcv.rgb2bgr(picture), out_file)
        above = int((pred.pred_instances.scores > args.score_thr).sum())
        print(f'{path}: {len(drawn.pred_instances)} detections drawn ({above} above '
              f'{args.score_thr}) -> {out_file}')
        written.append(out_file)
    return written


if __name__ == '__main__':
    with short_errors():
        main()
