"""Helpers the deployment and runtime tests share: the exported RetinaNet graph (the ``retinanet_e2e``
fixture of conftest.py), random RTMDet detectors prepared as the exporter prepares them, and the
interpreter prelude that makes PyTorch and mmdet unimportable."""
from pathlib import Path
from typing import Optional

import torch

from mmdet_efficientvit.datasets.demo_shapes import DEMO_SHAPES_CLASSES, generate_demo_shapes
from mmdet_efficientvit.deployment.check_weights import (CALIBRATION_SIZE, calibrate_batchnorm,
                                                         randomize_batchnorm)
from mmdet_efficientvit.deployment.end2end import OUTPUT_NAMES, set_check_biases, wrap_end2end
from mmdet_efficientvit.deployment.onnx_export import export_onnx
from mmdet_efficientvit.models.builders import build_detector

from _data import CONFIGS, load_tool, tiny_config

EVIT_M0 = str(CONFIGS / 'rtmdet_evit_m0_8xb32-300e_coco.py')
EVIT_M0_DW = str(CONFIGS / 'rtmdet_evit_m0_dw_8xb32-300e_coco.py')  # depthwise, per-level head convs
SMALL_TEST_CFG = dict(model=dict(test_cfg=dict(nms_pre=300, max_per_img=40)))

# The RetinaNet graph: DemoShapes images of 96x64 resized by the test pipeline (keep ratio, scale
# 192x128) to 192x128, a multiple of the pad divisor (32), so mmdet's clipping to the image and the
# graph's clipping to the padded input coincide and the two pipelines must agree box for box.
RETINANET_IMG_SIZE = (96, 64)
RETINANET_SCALE = (192, 128)
RETINANET_NUM_VAL = 6


def export_retinanet(root: Path) -> dict:
    """Data, config and checkpoint of one small RetinaNet-M0 (32-channel neck and head, 4 classes,
    random weights with randomised BN and a zero classification bias, so scores spread around 0.5
    and NMS has work), and its end-to-end graph exported by the tool."""
    data = generate_demo_shapes(str(root / 'shapes'), num_train=4, num_val=RETINANET_NUM_VAL,
                                img_size=RETINANET_IMG_SIZE, seed=3)
    cfg = tiny_config(root / 'tiny.py', root / 'shapes', img_size=RETINANET_SCALE)
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector(str(cfg)), seed=0)
    torch.nn.init.zeros_(model.bbox_head.retina_cls.bias)
    ckpt = root / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_SHAPES_CLASSES))), ckpt)
    onnx_path = root / 'tiny_e2e.onnx'
    load_tool('deployment/export_onnx.py').main(
        [str(cfg), '--checkpoint', str(ckpt), '--end2end', '--shape', '128x192',
         '--check-sizes', '128x192', '--check-batch', '2', '--out', str(onnx_path)])
    return dict(root=root, data=data, cfg=str(cfg), ckpt=str(ckpt), onnx=str(onnx_path))


def random_detector(config: str, calibration: Optional[torch.Tensor] = None,
                    **cfg_options) -> torch.nn.Module:
    """Random weights as ``export_onnx.py`` prepares them without a checkpoint (not deployed),
    BatchNorm statistics measured on ``calibration`` (default: a random 800x1216 image)."""
    torch.manual_seed(0)
    model = randomize_batchnorm(build_detector(config, cfg_options=cfg_options or None))
    if calibration is None:
        calibration = torch.randn(1, 3, *CALIBRATION_SIZE)
    calibrate_batchnorm(model, calibration)
    return set_check_biases(model)



def export_end2end(model: torch.nn.Module, path: str, size=(128, 128)) -> str:
    return export_onnx(wrap_end2end(model), path, torch.randn(1, 3, *size), OUTPUT_NAMES,
                       output_axes={name: {0: 'batch'} for name in OUTPUT_NAMES})


# Run a script with torch, mmcv, mmengine, mmdet and this package unimportable; print what was tried.
BLOCKER = """
import runpy, sys
BLOCKED = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmdet_efficientvit')
tried = []
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            tried.append(name)
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
finally:
    print('IMPORT ATTEMPTS', sorted(set(tried)), [m for m in sys.modules if m.split('.')[0] in BLOCKED])
    if 'mmdet_efficientvit_runtime' in sys.modules:
        print('RUNTIME', sys.modules['mmdet_efficientvit_runtime'].__file__)
"""
