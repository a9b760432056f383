"""Detect objects in an image or a folder of images and save each picture with its boxes as PNG.

    python tools/demo.py IMG_OR_DIR CONFIG CHECKPOINT --out-dir outputs/ [--score-thr 0.3] \
        [--device cpu]

Thin wrapper around mmdet's ``init_detector`` / ``inference_detector`` and ``DetLocalVisualizer``;
``OUT_DIR/<image stem>.png`` has the input's size.
"""
import argparse
import os
import os.path as osp
from typing import List

import mmcv
from mmengine.config import DictAction

from mmdet.apis import inference_detector, init_detector
from mmdet.registry import DATASETS, VISUALIZERS

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Draw a detector\'s boxes on images (PNG out).')
    parser.add_argument('inputs', help='an image file or a folder of images')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-dir', default='outputs', help='folder for the PNG pictures')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw boxes scoring above')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--max-images', type=int, default=None,
                        help='only the first N images of a folder (sorted by name)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (mmengine syntax)')
    return parser.parse_args(argv)


def list_images(inputs: str, max_images=None) -> List[str]:
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


def _class_names(model) -> tuple:
    """Class names for the drawn labels: the checkpoint's, else the config's test dataset's."""
    num_classes = model.bbox_head.num_classes
    classes = tuple(model.dataset_meta.get('classes', ()))
    if len(classes) == num_classes:
        return classes
    dataset_cfg = dict(model.cfg.test_dataloader.dataset, lazy_init=True)
    config_classes = tuple(DATASETS.build(dataset_cfg).metainfo.get('classes', ()))
    if len(config_classes) != num_classes:
        raise ValueError(
            f'the model predicts {num_classes} classes but neither the checkpoint '
            f'({len(classes)} names) nor the config\'s test dataset ({len(config_classes)} names) '
            'names them all; set metainfo=dict(classes=...) in the config\'s test dataset.')
    return config_classes


def main(argv=None) -> List[str]:
    args = parse_args(argv)
    images = list_images(args.inputs, args.max_images)
    model = init_detector(args.config, args.checkpoint, device=args.device,
                          cfg_options=args.cfg_options)
    model.dataset_meta['classes'] = _class_names(model)
    # Pictures go straight to files (out_file), so no logging backend is needed.
    visualizer = VISUALIZERS.build(dict(model.cfg.visualizer, vis_backends=None))
    visualizer.dataset_meta = model.dataset_meta

    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for path in images:
        result = inference_detector(model, path)
        out_file = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0] + '.png')
        visualizer.add_datasample(
            osp.basename(path), mmcv.imread(path, channel_order='rgb'), data_sample=result,
            draw_gt=False, show=False, pred_score_thr=args.score_thr, out_file=out_file)
        kept = int((result.pred_instances.scores > args.score_thr).sum())
        print(f'{path}: {kept} boxes above {args.score_thr} -> {out_file}')
        written.append(out_file)
    return written


if __name__ == '__main__':
    main()
