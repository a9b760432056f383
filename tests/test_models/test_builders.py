"""models/builders.build_detector: mmdet's ``init_detector`` plus what checks and exports need (no
weights fetched even with config options, mmdet's initialisers, strict loading, the checkpoint's
classes)."""
import math

import pytest
import torch

from mmdet_efficientvit.models.builders import build_detector

CONFIG = 'mmdet_efficientvit::retinanet_evit_m0_fpn_1x_coco.py'
# weights that do not exist: any attempt to load them fails the build
ABSENT = dict(type='Pretrained', checkpoint='/nonexistent/weights.pth')


@pytest.fixture(scope='module')
def detector():
    # with options, mmdet's init_detector keeps the backbone's init_cfg; ours drops it (and the
    # detector's), so neither absent file is read
    return build_detector(CONFIG, cfg_options=dict(model=dict(
        init_cfg=ABSENT, backbone=dict(init_cfg=ABSENT), bbox_head=dict(num_classes=3))))


def test_random_detector_has_mmdets_initialisation(detector):
    assert not detector.training and detector.bbox_head.num_classes == 3
    prior = -math.log((1 - 0.01) / 0.01)  # RetinaHead's init_cfg: bias_prob=0.01
    torch.testing.assert_close(detector.bbox_head.retina_cls.bias,
                               torch.full_like(detector.bbox_head.retina_cls.bias, prior))


def test_checkpoint_loads_strictly_with_its_classes(detector, tmp_path):
    state = detector.state_dict()
    classes = ('circle', 'square', 'triangle')
    full = tmp_path / 'full.pth'
    torch.save(dict(state_dict=state, meta=dict(dataset_meta=dict(classes=classes))), full)
    options = dict(model=dict(bbox_head=dict(num_classes=3)))
    loaded = build_detector(CONFIG, str(full), cfg_options=options)
    assert loaded.dataset_meta['classes'] == classes
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)

    missing = tmp_path / 'missing.pth'
    torch.save(dict(state_dict={k: v for k, v in state.items() if 'retina_cls' not in k}), missing)
    with pytest.raises(RuntimeError, match='missing keys in source state_dict: bbox_head.retina_cls'):
        build_detector(CONFIG, str(missing), cfg_options=options)
