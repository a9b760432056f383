"""The released EfficientViT weights and the paper's figures: the one home of every URL and number.

Configs name the weights as ``efficientvit://<file>`` (registered with mmengine's ``CheckpointLoader``
when the package is imported, resolved here), the way OpenMMLab configs use ``torchvision://``. timm's
conversions of these ImageNet weights on the Hugging Face Hub are named ``hf-hub:<repo>`` as timm names
them (``hub_checkpoint``; read through huggingface_hub's cache by ``models/utils/checkpoint/reading.py``).
"""
from typing import Dict

MODEL_ZOO_URL = 'https://github.com/xinyuliu-jeffrey/EfficientViT_Model_Zoo/releases/download/v1.0/'
SCHEME = 'efficientvit://'
HF_HUB_SCHEME = 'hf-hub:'

ARCHS = ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')

# The paper's ImageNet-1k classifiers at 224x224 (Table 1 of arXiv 2305.07027): top-1 (%), parameters
# with the 1000-class head, and MFLOPs (multiply-adds).
PAPER_IMAGENET: Dict[str, dict] = {
    'm0': dict(top1=63.2, params=2_349_436, mflops=79),
    'm1': dict(top1=68.4, params=2_980_560, mflops=167),
    'm2': dict(top1=70.8, params=4_187_554, mflops=201),
    'm3': dict(top1=73.4, params=6_900_722, mflops=263),
    'm4': dict(top1=74.3, params=8_804_228, mflops=299),
    'm5': dict(top1=77.1, params=12_473_772, mflops=522),
}
PAPER_MFLOPS = {arch: row['mflops'] for arch, row in PAPER_IMAGENET.items()}

# Classification windows at 224: the window is clamped to the stage resolution (14, 7, 4).
CLS_WINDOW_SIZE = (7, 7, 4)

# The official COCO 1x detectors (mmdet 2.x checkpoints) and their val2017 results, by our config name.
DETECTION_RELEASES: Dict[str, dict] = {
    'retinanet_evit_m4_fpn_1x_coco': dict(
        weights='retinanet_efficientvit_m4_fpn_1x_coco.pth',
        results={'Object Detection': {'box AP': 32.7, 'box AP50': 52.2, 'box AP75': 34.1,
                                      'box APs': 17.6, 'box APm': 35.3, 'box APl': 46.0}}),
    'mask_rcnn_evit_m4_fpn_1x_coco': dict(
        weights='mask_rcnn_efficientvit_m4_fpn_1x_coco.pth',
        results={'Object Detection': {'box AP': 32.8},
                 'Instance Segmentation': {'mask AP': 31.0, 'mask AP50': 51.2, 'mask AP75': 32.2}}),
}


def imagenet_checkpoint(arch: str) -> str:
    """The ``efficientvit://`` name of an arch's ImageNet checkpoint, as the configs write it."""
    return f'{SCHEME}efficientvit_{arch.lower()}.pth'


def hub_checkpoint(arch: str) -> str:
    """The ``hf-hub:`` id of an arch's ImageNet weights as timm releases them on the Hugging Face Hub."""
    return f'{HF_HUB_SCHEME}timm/efficientvit_{arch.lower()}.r224_in1k'


def resolve(name: str) -> str:
    """``efficientvit://<file>`` -> the download URL of that file in the official model zoo."""
    if not name.startswith(SCHEME):
        raise ValueError(f'{name!r} does not start with {SCHEME}')
    return MODEL_ZOO_URL + name[len(SCHEME):]
