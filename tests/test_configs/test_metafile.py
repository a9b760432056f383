"""configs/metafile.yml and model-index.yml: what MMDetection tooling lists is what the repository has.

The metafile is written by tools/misc/gen_metafile.py; here every entry is checked against the configs,
the model zoo and freshly counted parameters (FLOPs recounted for one config, the slow part).
"""
import pytest
import yaml

from mmdet_efficientvit.models.builders import build_detector
from mmdet_efficientvit.analysis.flops import detector_complexity
from mmdet_efficientvit.model_zoo import (ARCHS, DETECTION_RELEASES, MODEL_ZOO_URL, imagenet_checkpoint,
                                          resolve)
from mmdet_efficientvit.resources import load_config

from _data import CONFIGS, REPO

METAFILE = yaml.safe_load((CONFIGS / 'metafile.yml').read_text())
MODELS = {m['Name']: m for m in METAFILE['Models']}


def test_model_index_imports_the_metafile():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    assert index == {'Import': ['configs/metafile.yml']}


def test_every_detector_config_is_listed_once():
    one_x = sorted(p.stem for p in CONFIGS.glob('*_evit_m*_fpn_1x_coco.py'))
    realtime = sorted(p.stem for p in CONFIGS.glob('rtmdet_evit_m*_8xb32-300e_coco.py'))
    # the real-time family: plain and depthwise convs in the neck and head, one collection
    assert realtime == sorted(f'rtmdet_evit_{a}{dw}_8xb32-300e_coco' for a in ARCHS for dw in ('', '_dw'))
    assert len(one_x) == 12 and sorted(MODELS) == sorted(one_x + realtime)
    assert [c['Name'] for c in METAFILE['Collections']] == ['EfficientViT', 'EfficientViT-RTMDet']
    for name, model in MODELS.items():
        collection = 'EfficientViT-RTMDet' if name in realtime else 'EfficientViT'
        assert model['Config'] == f'configs/{name}.py' and model['In Collection'] == collection


@pytest.mark.parametrize('name', sorted(MODELS))
def test_entry_matches_config_and_model_zoo(name):
    model = MODELS[name]
    cfg = load_config(str(REPO / model['Config']))
    meta = model['Metadata']
    assert meta['Epochs'] == cfg.train_cfg.max_epochs == (300 if name.startswith('rtmdet') else 12)
    assert meta['Backbone Weights'] == resolve(imagenet_checkpoint(cfg.model.backbone.arch))
    detector = build_detector(cfg)
    assert meta['Parameters'] == sum(p.numel() for p in detector.parameters())
    release = DETECTION_RELEASES.get(name)
    if release is None:  # the paper reports COCO results (and releases weights) for M4 only
        assert 'Results' not in model and 'Weights' not in model
    else:
        assert model['Weights'] == MODEL_ZOO_URL + release['weights']
        assert {r['Task']: r['Metrics'] for r in model['Results']} == release['results']


@pytest.mark.parametrize('name, size, written', [
    ('retinanet_evit_m0_fpn_1x_coco', (800, 1333), '1344x800'),
    ('rtmdet_evit_m0_8xb32-300e_coco', (640, 640), '640x640'),
    ('rtmdet_evit_m0_dw_8xb32-300e_coco', (640, 640), '640x640'),
])
def test_flops_are_recounted(name, size, written):
    stats = detector_complexity(load_config(str(CONFIGS / f'{name}.py')), size)
    assert MODELS[name]['Metadata']['FLOPs'] == stats['flops']
    assert MODELS[name]['Metadata']['Input Size'] == written
