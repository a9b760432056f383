"""The ``mmdet_efficientvit`` registry scope: configs reached by name (``mmdet_efficientvit::...``) build
from it, and it finds our types and every mmdet type through its parents."""
from mmdet.models.detectors import RetinaNet
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.registry import DefaultScope

from mmdet_efficientvit.models import EfficientViT, EfficientViTFPN, EfficientViTPAFPN
from mmdet_efficientvit.registry import MODELS, SCOPE


def test_our_modules_register_into_mmdets_registry():
    for cls in (EfficientViT, EfficientViTFPN, EfficientViTPAFPN):
        assert MMDET_MODELS.get(cls.__name__) is cls


def test_scope_registry_builds_ours_and_mmdets_types():
    assert MODELS.scope == SCOPE and MODELS.parent is MMDET_MODELS
    with DefaultScope.overwrite_default_scope(SCOPE):
        backbone = MODELS.build(dict(type='EfficientViT', arch='m0', out_indices=(2, )))
        assert type(backbone) is EfficientViT
        assert MODELS.get('RetinaNet') is RetinaNet
        assert MODELS.get('mmdet.RetinaNet') is RetinaNet
