"""What INT8 costs a trained detector in accuracy: the bbox mAP of its end-to-end ONNX graph and of
that graph's INT8 copy, both scored on the config's val set.

The graph is the one ``export_onnx.py CONFIG --checkpoint CKPT --end2end --quantize int8`` writes
(BN folded, post-processing in the graph, the config's test preprocessing in its metadata:
:mod:`..deployment.end2end_export`), traced at the test pipeline's ``Resize`` scale; the INT8 copy
is onnxruntime's static QDQ (:mod:`..deployment.quantize`) calibrated on the first ``calib_num``
images of the config's *training* folder, read as deployed inference reads them. Both are scored
with the runtime's COCO evaluation (what ``onnx_inference.py GRAPH VAL_DIR --eval VAL_JSON``
computes), so the float graph's mAP is the mAP of the training's own validation, up to the
runtime's reproduction of the test pipeline. The speed-accuracy front runs this for every (config,
seed) with ``--int8-map``.
"""
import os.path as osp
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import mmdet_efficientvit_runtime as runtime
from mmengine.config import Config

from ..errors import SetupError
from ..tools_support.data_checks import split_data

# what errors about the calibration folder call it (image_inputs names the option it came from)
CALIBRATION_FOLDER = "the config's training images"


@dataclass
class GraphMaps:
    """bbox mAP of the float end-to-end graph and of its INT8 copy, and what it took."""
    fp32: float
    int8: float
    calibration_images: int
    seconds: float

    @property
    def loss(self) -> float:
        """mAP that INT8 loses (float graph minus INT8 graph; negative: INT8 scored higher)."""
        return self.fp32 - self.int8


def int8_data(cfg: Config, config: str) -> Tuple[str, str, str]:
    """``(val annotation file, val image folder, training image folder)`` of ``cfg`` (the config at
    ``config``); :class:`SetupError` naming the first one that is missing and the fix."""
    (ann, val_dir), (_, train_dir) = split_data(cfg, 'val'), split_data(cfg, 'train')
    for split, what, path in (('val', 'val annotation file', ann),
                              ('val', 'val image folder', val_dir),
                              ('train', 'training image folder', train_dir)):
        if not path:
            raise SetupError(f'{config}: the INT8 mAP needs a {what}, and {split}_dataloader.'
                             'dataset names none: give it its ann_file and data_prefix.img')
        if not osp.exists(path):
            raise SetupError(f'{config}: the INT8 mAP needs the {what} {path}, which is not there: '
                             'put the dataset there (DemoShapes: tools/run_demo.sh generates '
                             'data/demo_shapes) or pass --cfg-options '
                             f'{split}_dataloader.dataset.data_root=/path/to/data/')
    return ann, val_dir, train_dir


def evaluation_size(cfg: Config) -> Tuple[int, int]:
    """(H, W) of the test pipeline's ``Resize`` scale: the size the training's validation ran at."""
    from ..deployment.metadata import test_preprocessing
    width, height = test_preprocessing(cfg)['scale']
    return height, width


def bbox_map(path: str, ann_file: str, img_dir: str, threads: int) -> float:
    """bbox mAP@[.5:.95] of the end-to-end graph at ``path`` under onnxruntime."""
    session, meta = runtime.load_model(path, threads)
    return float(runtime.evaluate(session, meta, ann_file, img_dir)['bbox'][0])


def graph_maps(config: str, checkpoint: str, cfg_options: Optional[dict], calib_num: int,
               threads: int, log: Callable[[str], None] = lambda msg: None) -> GraphMaps:
    """Export ``checkpoint`` of ``config`` (with ``cfg_options`` merged) end to end, make its INT8
    copy and score both on the val set; ``log`` hears each step."""
    from ..deployment.end2end_export import export_end2end_onnx
    from ..deployment.quantize import quantize_int8_on_images
    from ..models.builders import build_detector
    from ..models.utils import deploy_model
    from ..resources import load_config
    start = time.time()
    cfg = load_config(config)
    cfg.merge_from_dict(cfg_options or {})
    ann_file, val_dir, train_dir = int8_data(cfg, config)
    detector = deploy_model(build_detector(config, checkpoint, cfg_options or None)).eval()
    size = evaluation_size(cfg)
    with tempfile.TemporaryDirectory() as tmpdir:
        fp32, int8 = osp.join(tmpdir, 'end2end.onnx'), osp.join(tmpdir, 'end2end.int8.onnx')
        export_end2end_onnx(detector, config, checkpoint, fp32, size, cfg_options=cfg_options)
        num = quantize_int8_on_images(fp32, int8, train_dir, calib_num, CALIBRATION_FOLDER)
        log(f'exported at {size[0]}x{size[1]} and quantized on {num} images of {train_dir} '
            f'({time.time() - start:.0f} s); scoring both on {ann_file}')
        try:
            maps = [bbox_map(path, ann_file, val_dir, threads) for path in (fp32, int8)]
        except runtime.UserError as err:
            raise SetupError(f'{config}: {err}') from None
    return GraphMaps(maps[0], maps[1], num, time.time() - start)
