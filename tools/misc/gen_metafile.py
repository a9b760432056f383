"""Write ``configs/metafile.yml`` (MMDetection's model-index format) from the configs and the model zoo.

Every entry is derived, not typed in: config paths from ``configs/``, parameters and FLOPs counted by
mmengine's analyzer at the family's input size (1333x800 for the 1x detectors, 640x640 for the
real-time RTMDets; mmdet tensor mode, as ``get_flops.py``), the paper's COCO results
and the official weights from ``mmdet_efficientvit.model_zoo``. ``tests/test_configs/test_metafile.py`` checks that
the committed file is what this script writes.

    python tools/misc/gen_metafile.py            # rewrite configs/metafile.yml
    python tools/misc/gen_metafile.py --check    # exit 1 if the committed file is stale
"""
import argparse
import glob
import os.path as osp
import sys
from typing import Dict, Tuple

import torch
import yaml

from mmdet_efficientvit.analysis.flops import detector_complexity
from mmdet_efficientvit.model_zoo import (DETECTION_RELEASES, MODEL_ZOO_URL, imagenet_checkpoint,
                                          resolve)
from mmdet_efficientvit.resources import configs_dir, load_config

CONFIGS = configs_dir()
METAFILE = osp.join(CONFIGS, 'metafile.yml')
COLLECTION = dict(
    Name='EfficientViT',
    Metadata=dict(
        **{'Training Data': 'COCO', 'Training Techniques': ['AdamW', 'Weight Decay'],
           'Training Resources': '8x GPUs (2 images each), the official recipe',
           'Architecture': ['EfficientViT', 'Cascaded Group Attention', 'EfficientViTFPN']}),
    Paper=dict(URL='https://arxiv.org/abs/2305.07027',
               Title='EfficientViT: Memory Efficient Vision Transformer with Cascaded Group '
                     'Attention'),
    README='README.md',
    Code=dict(URL='mmdet_efficientvit/models/backbones/efficientvit.py', Version='v0.1.0'),
)
REALTIME_COLLECTION = dict(
    COLLECTION,
    Name='EfficientViT-RTMDet',
    Metadata=dict(
        **{'Training Data': 'COCO', 'Training Techniques': ['AdamW', 'Flat Cosine Annealing', 'EMA'],
           'Training Resources': "8x GPUs (32 images each), mmdet's RTMDet-tiny recipe",
           'Architecture': ['EfficientViT', 'Cascaded Group Attention', 'EfficientViTFPN',
                            'RTMDet']}))
# (config glob, collection, FLOPs input (h, w)) of each detector family. The real-time glob takes the
# depthwise variants (rtmdet_evit_mX_dw_*) into the same collection, as mmdet's metafiles keep a method's
# variants of one recipe together (SSDLite in SSD, RTMDet with Swin or ConvNeXt in RTMDet).
FAMILIES = [
    ('*_evit_m*_fpn_1x_coco.py', COLLECTION, (800, 1333)),
    ('rtmdet_evit_m*_8xb32-300e_coco.py', REALTIME_COLLECTION, (640, 640)),
]


def model_entry(config: str, collection: str, size: Tuple[int, int]) -> Dict:
    """One ``Models`` entry: name, config, metadata (params, FLOPs, backbone init), results, weights."""
    name = osp.splitext(osp.basename(config))[0]
    cfg = load_config(config)
    stats = detector_complexity(cfg, size)
    arch = cfg.model.backbone.arch
    entry = dict(
        Name=name,
        **{'In Collection': collection},
        Config=osp.join('configs', osp.relpath(config, CONFIGS)),
        Metadata=dict(
            Epochs=cfg.train_cfg.max_epochs,
            FLOPs=stats['flops'],
            Parameters=stats['params'],
            **{'Input Size': f"{stats['size'][1]}x{stats['size'][0]}",
               'Backbone Weights': resolve(imagenet_checkpoint(arch))}))
    release = DETECTION_RELEASES.get(name)
    if release:
        entry['Results'] = [dict(Task=task, Dataset='COCO', Metrics=metrics)
                            for task, metrics in release['results'].items()]
        entry['Weights'] = MODEL_ZOO_URL + release['weights']
    return entry


def metafile_text() -> str:
    models = [model_entry(config, collection['Name'], size)
              for pattern, collection, size in FAMILIES
              for config in sorted(glob.glob(osp.join(CONFIGS, pattern)))]
    data = dict(Collections=[collection for _, collection, _ in FAMILIES], Models=models)
    header = '# Written by tools/misc/gen_metafile.py; do not edit by hand.\n'
    return header + yaml.safe_dump(data, sort_keys=False, width=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--check', action='store_true', help='compare with the committed file')
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    text = metafile_text()
    if args.check:
        current = open(METAFILE).read() if osp.isfile(METAFILE) else ''
        if current != text:
            print(f'{METAFILE} is stale: run python tools/misc/gen_metafile.py', file=sys.stderr)
            return 1
        print(f'{METAFILE} is up to date')
        return 0
    with open(METAFILE, 'w') as f:
        f.write(text)
    print(f'wrote {METAFILE}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
