"""Registries of the ``mmdet_efficientvit`` scope: one child of each mmdet registry, holding nothing.

Our modules register into mmdet's registries, so ``custom_imports=dict(imports=['mmdet_efficientvit'])``
is all a config needs. These children exist for configs reached by name, ``mmdet_efficientvit::...``
(``_base_`` or ``mmengine.hub.get_config``): mmengine then marks everything such a config builds with
``_scope_='mmdet_efficientvit'``, imports ``mmdet_efficientvit.registry`` and builds from the registry of
that scope, which finds every mmdet, mmcv and mmengine type (and ours) through its parent.
"""
from mmdet import registry as mmdet_registry
from mmdet.utils import register_all_modules
from mmengine.registry import Registry

SCOPE = 'mmdet_efficientvit'


def _child(parent: Registry) -> Registry:
    return Registry(parent.name, parent=parent, scope=SCOPE)


# A lookup through a child does not import the parent's modules: import all of mmdet's once.
register_all_modules(init_default_scope=False)

RUNNERS = _child(mmdet_registry.RUNNERS)
RUNNER_CONSTRUCTORS = _child(mmdet_registry.RUNNER_CONSTRUCTORS)
LOOPS = _child(mmdet_registry.LOOPS)
HOOKS = _child(mmdet_registry.HOOKS)
LOG_PROCESSORS = _child(mmdet_registry.LOG_PROCESSORS)
OPTIMIZERS = _child(mmdet_registry.OPTIMIZERS)
OPTIM_WRAPPERS = _child(mmdet_registry.OPTIM_WRAPPERS)
OPTIM_WRAPPER_CONSTRUCTORS = _child(mmdet_registry.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = _child(mmdet_registry.PARAM_SCHEDULERS)
DATASETS = _child(mmdet_registry.DATASETS)
DATA_SAMPLERS = _child(mmdet_registry.DATA_SAMPLERS)
TRANSFORMS = _child(mmdet_registry.TRANSFORMS)
MODELS = _child(mmdet_registry.MODELS)
MODEL_WRAPPERS = _child(mmdet_registry.MODEL_WRAPPERS)
WEIGHT_INITIALIZERS = _child(mmdet_registry.WEIGHT_INITIALIZERS)
TASK_UTILS = _child(mmdet_registry.TASK_UTILS)
METRICS = _child(mmdet_registry.METRICS)
EVALUATOR = _child(mmdet_registry.EVALUATOR)
VISUALIZERS = _child(mmdet_registry.VISUALIZERS)
VISBACKENDS = _child(mmdet_registry.VISBACKENDS)
