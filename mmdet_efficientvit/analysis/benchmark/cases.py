"""What a benchmark compares: :class:`Case` (a model to run plus how to rebuild it) and its builders.

Every case carries a JSON-able ``spec`` from which :func:`build_runner` rebuilds it in another process
(the memory measurement runs each case in a fresh one). Weights are random unless a spec names a local
checkpoint (the speed-accuracy front times trained models): timings do not depend on them, and
nothing is downloaded.

The device protocol (:func:`device_backbone_cases`, :func:`device_detector_cases`; the paper's GPU
protocol on CUDA) runs the same models on a device, in fp32 and AMP (autocast: float16 on CUDA,
bfloat16 on the CPU), and is measured in-process (no spec rebuild).
"""
import copy
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet_efficientvit_runtime import (OPENVINO_PRECISIONS, OpenVINOSession, OrtSession,
                                        UserError, bf16_unavailable, openvino_core)

from ...deployment.check_weights import randomize_batchnorm
from ...deployment.traceable import BackboneFeatureMaps, RawDetector, image_data_samples
from ...model_zoo import ARCHS, CLS_WINDOW_SIZE
from ...models.builders import build_backbone, build_detector
from ...models.utils import deploy_model
from ...tools_support import parse_size
from ..flops import complexity

DETECTORS = {f'evit-{a}': f'mmdet_efficientvit::retinanet_evit_{a}_fpn_1x_coco.py' for a in ARCHS}
DETECTORS.update({
    'r18': 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    'r50': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py',
})
DETECTOR_NAMES = {**{f'evit-{a}': f'RetinaNet-EfficientViT-{a.upper()}' for a in ARCHS},
                  'r18': 'RetinaNet-R18', 'r50': 'RetinaNet-R50'}
# (key, config, display name) of the real-time family: each arch plain and, with the suffix -dw, with
# depthwise-separable neck and head convs (configs/rtmdet_evit_mX[_dw]_8xb32-300e_coco.py).
REALTIME_FAMILY = [
    (f'rtmdet-evit-{a}{dw}',
     f'mmdet_efficientvit::rtmdet_evit_{a}{dw.replace("-", "_")}_8xb32-300e_coco.py',
     f'RTMDet-EfficientViT-{a.upper()}{dw.upper()}')
    for a in ARCHS for dw in ('', '-dw')]
# The real-time family and its reference, mmdet's RTMDet-tiny (the ``realtime`` group; any of
# DETECTORS may join it, e.g. RetinaNet-EfficientViT-M0 at the same size).
REALTIME_DETECTORS = {
    **{key: config for key, config, _ in REALTIME_FAMILY},
    'rtmdet-tiny': 'mmdet::rtmdet/rtmdet_tiny_8xb32-300e_coco.py',
}
ALL_DETECTORS = {**DETECTORS, **REALTIME_DETECTORS}
DETECTOR_NAMES.update({**{key: name for key, _, name in REALTIME_FAMILY}, 'rtmdet-tiny': 'RTMDet-tiny'})


# The eager ``predict`` comparison (``checkouts``): what ``tools/test.py`` runs per image, with and
# without ``--fuse``, for the two families at their test sizes.
PREDICT_DETECTORS = {'rtmdet-evit-m0': '640x640', 'evit-m4': '800x1216'}
PREDICT_VARIANTS = {'unfused predict': False, 'deployed predict': True}


def resolve_detector(detector: str) -> Tuple[str, str]:
    """``(config, display name)`` of a key of :data:`ALL_DETECTORS` or of a config file (named by its
    stem), so that a user's own config or an ablation (``configs/demo/ablations/``) can be timed."""
    if detector in ALL_DETECTORS:
        return ALL_DETECTORS[detector], DETECTOR_NAMES[detector]
    if detector.endswith('.py') and os.path.isfile(detector):
        return detector, os.path.splitext(os.path.basename(detector))[0]
    raise ValueError(f'{detector!r} is neither a detector key ({", ".join(ALL_DETECTORS)}) nor a '
                     'config file that exists')


def case_key(group: str, model: str, variant: str) -> str:
    """The key that names a case in ratios and CSV rows: ``'group|model|variant'``."""
    return f'{group}|{model}|{variant}'


@dataclass
class Case:
    group: str                       # 'backbone', 'backbone@det', 'detector'
    model: str                       # display name
    variant: str                     # 'timm', 'unfused', 'deployed', ...
    size: Tuple[int, int]
    spec: Dict
    run: Callable
    batch: int                       # throughput batch size (0: latency only)
    params: int = 0
    flops: int = 0
    reference: Optional[str] = None  # key of the case ratios are taken against
    latency_ms: float = float('nan')
    throughput: float = float('nan')
    mem_bs1: float = float('nan')
    mem_bsn: float = float('nan')

    @property
    def key(self) -> str:
        return case_key(self.group, self.model, self.variant)


# ------------------------------------------------------------------------------------------ runners
def onnx_runner(path: str, threads: int) -> Callable:
    """Run an exported graph with onnxruntime's CPU provider on a torch tensor."""
    session = OrtSession(path, threads=threads)
    return lambda x: session.run({'input': x.numpy()})


def openvino_runner(path: str, threads: int, precision: str) -> Callable:
    """Run an exported graph with OpenVINO's CPU plugin in ``precision`` (f32, bf16) on a torch
    tensor, in the runtime's session (as ``onnx-inference --runtime openvino`` runs it)."""
    session = OpenVINOSession(path, threads, precision)
    return lambda x: session.run({'input': x.numpy()})


def openvino_precisions() -> Tuple[Tuple[str, ...], Optional[str]]:
    """The OpenVINO precisions this machine can time (f32, and bf16 where the CPU has it) and a
    note on what is left out and why (None: nothing)."""
    try:
        core = openvino_core()
    except UserError:
        return (), 'no OpenVINO rows: OpenVINO is not installed (pip install openvino)'
    reason = bf16_unavailable(core)
    if reason:
        return ('f32', ), f'no OpenVINO bf16 rows: {reason}'
    return tuple(OPENVINO_PRECISIONS), None


def finish_runner(model: nn.Module, spec: Dict) -> Callable:
    """Apply channels_last / torch.compile as the spec asks."""
    if spec.get('channels_last'):
        model = model.to(memory_format=torch.channels_last)
    if spec.get('compile'):
        model = torch.compile(model)
    if spec.get('channels_last'):
        return lambda x: model(x.contiguous(memory_format=torch.channels_last))
    return model


def detector_runner(model: nn.Module, nms: bool) -> Callable:
    """Raw maps (no NMS) or ``predict`` with NMS; inputs are already normalised and padded."""
    if not nms:
        return RawDetector(model).eval()

    def predict(x: torch.Tensor):
        return model.predict(x, image_data_samples(x))

    return predict


def build_runner(spec: Dict, threads: int) -> Callable:
    """Build the callable for one benchmark case from its spec (weights: random, or a detector spec's
    ``checkpoint``)."""
    kind = spec['kind']
    if kind == 'onnx':
        return onnx_runner(spec['onnx_path'], threads)
    if kind == 'openvino':
        return openvino_runner(spec['onnx_path'], threads, spec['precision'])
    if kind == 'evit':
        model = BackboneFeatureMaps(build_backbone(spec['arch'], window_size=spec['window_size']))
    elif kind == 'timm':
        import timm
        model = BackboneFeatureMaps(timm.create_model(f"efficientvit_{spec['arch']}",
                                                      pretrained=False, num_classes=0))
    elif kind == 'detector':
        model = build_detector(spec['config'], spec.get('checkpoint'))
    else:
        raise ValueError(f'unknown case kind {kind!r}')
    if spec.get('deploy'):
        deploy_model(model)
    if spec.get('scores_below_threshold'):
        scores_below_threshold(model)
    if kind == 'detector':
        return detector_runner(model, spec.get('nms', False))
    return finish_runner(model.eval(), spec)


# ------------------------------------------------------------------------------------------ builders
def timm_and_ours(arch: str, seed: int) -> Tuple[nn.Module, nn.Module]:
    """timm's model (seeded random init, BN randomised) and ours carrying the same weights.

    That the two compute the same is tested (``tests/test_models/test_backbones/test_efficientvit.py``); here the weights only make
    the comparison fair.
    """
    import timm
    from ...models.utils import load_state_dict_checked, timm_to_official

    torch.manual_seed(seed)
    ref = randomize_batchnorm(timm.create_model(f'efficientvit_{arch}', pretrained=False,
                                                num_classes=0), seed)
    ours = build_backbone(arch, window_size=CLS_WINDOW_SIZE)
    load_state_dict_checked(ours, timm_to_official(ref.state_dict()), f'timm efficientvit_{arch}',
                            ours.arch_zoo, ours.arch_name)
    return BackboneFeatureMaps(ref).eval(), BackboneFeatureMaps(ours).eval()


def _window(size: Tuple[int, int]) -> Tuple[int, int, int]:
    """Classification windows at 224 (as the paper measures), the detection windows elsewhere."""
    return CLS_WINDOW_SIZE if size == (224, 224) else (7, 7, 7)


def _same_weight_backbones(arch: str, size: Tuple[int, int], seed: int) -> Tuple[Dict, Dict]:
    """timm's model, ours and ours deployed, carrying the same weights, and their complexity at
    ``size``: two dicts keyed ``'timm'``, ``'ours unfused'``, ``'ours deployed'``."""
    ref, ours = timm_and_ours(arch, seed)
    models = {'timm': ref, 'ours unfused': ours, 'ours deployed': deploy_model(copy.deepcopy(ours))}
    img = torch.randn(1, 3, *size)
    return models, {label: complexity(model, img) for label, model in models.items()}


def backbone_cases(archs: List[str], size: str, batch: int, seed: int, channels_last: bool = False,
                   compile: bool = False) -> List[List[Case]]:
    """Per arch: timm, ours unfused, ours deployed (+ channels_last / torch.compile), same weights."""
    size = parse_size(size)
    groups = []
    for arch in archs:
        models, stats = _same_weight_backbones(arch, size, seed)
        spec = dict(kind='evit', arch=arch, window_size=list(_window(size)))
        name = f'EfficientViT-{arch.upper()}'
        specs = {'timm': dict(kind='timm', arch=arch), 'ours unfused': spec,
                 'ours deployed': dict(spec, deploy=True)}
        cases = [Case('backbone', name, 'timm (unfused)' if label == 'timm' else label, size,
                      specs[label], model, batch, stats[label]['params'], stats[label]['flops'])
                 for label, model in models.items()]
        for flag, label, wanted in (('channels_last', 'channels_last', channels_last),
                                    ('compile', 'torch.compile', compile)):
            if wanted:
                s = dict(spec, deploy=True, **{flag: True})
                cases.append(Case('backbone', name, f'ours deployed + {label}', size, s,
                                  finish_runner(copy.deepcopy(models['ours deployed']), s), batch,
                                  stats['ours deployed']['params'], stats['ours deployed']['flops']))
        for c in cases:
            c.reference = case_key('backbone', name, 'timm (unfused)')
        groups.append(cases)
    return groups


def onnx_backbone_cases(archs: List[str], size: str, batch: int, seed: int, threads: int,
                        tmpdir: str, log: Callable) -> List[List[Case]]:
    """Per arch: our deployed backbone in eager PyTorch vs the same graph under onnxruntime."""
    from ...deployment.onnx_export import check_onnx, export_onnx
    size = parse_size(size)
    groups = []
    for arch in archs:
        torch.manual_seed(seed)
        model = BackboneFeatureMaps(deploy_model(randomize_batchnorm(build_backbone(arch), seed)))
        img = torch.randn(1, 3, *size)
        path = export_onnx(model, os.path.join(tmpdir, f'evit_{arch}.onnx'), img)
        diff = check_onnx(path, model, [img])[0]['max_abs_diff']
        log(f'  {arch}: ONNX backbone exported, max |onnxruntime - PyTorch| {diff:.2e}')
        stats = complexity(model, img)
        name = f'EfficientViT-{arch.upper()}'
        spec = dict(kind='evit', arch=arch, window_size=[7, 7, 7], deploy=True)
        onnx_spec = dict(kind='onnx', onnx_path=path)
        cases = [Case('backbone@det', name, 'ours deployed', size, spec, model, batch,
                      stats['params'], stats['flops']),
                 Case('backbone@det', name, 'onnxruntime', size, onnx_spec,
                      build_runner(onnx_spec, threads), batch, stats['params'], stats['flops'])]
        for c in cases:
            c.reference = case_key('backbone@det', name, 'ours deployed')
        groups.append(cases)
    return groups


def detector_cases(detectors: List[str], size: str, batch: int, seed: int, threads: int,
                   tmpdir: str, log: Callable, unfused: bool = False,
                   nms_detectors: Tuple[str, ...] = (), onnx: bool = False) -> List[List[Case]]:
    """RetinaNets at one size: (unfused,) deployed without NMS, with NMS, and under onnxruntime;
    every case against RetinaNet-R50 measured the same way."""
    from ...deployment.onnx_export import check_onnx, export_onnx
    size = parse_size(size)
    cases = []
    for det in detectors:
        config = DETECTORS[det]
        torch.manual_seed(seed)
        model = build_detector(config)
        name = DETECTOR_NAMES[det]
        spec = dict(kind='detector', config=config)
        img = torch.randn(1, 3, *size)
        if unfused:
            raw = RawDetector(model).eval()
            stats = complexity(raw, img)
            cases.append(Case('detector', name, 'unfused, no NMS', size, spec, raw, batch,
                              stats['params'], stats['flops']))
        deployed = deploy_model(copy.deepcopy(model))
        raw = RawDetector(deployed).eval()
        stats = complexity(raw, img)
        cases.append(Case('detector', name, 'deployed, no NMS', size, dict(spec, deploy=True), raw,
                          batch, stats['params'], stats['flops']))
        if det in nms_detectors:
            cases.append(Case('detector', name, 'deployed + NMS', size,
                              dict(spec, deploy=True, nms=True), detector_runner(deployed, nms=True),
                              batch, stats['params'], stats['flops']))
        if onnx:
            path = export_onnx(raw, os.path.join(tmpdir, f'{det}.onnx'), img)
            diff = check_onnx(path, raw, [img])[0]['max_abs_diff']
            log(f'  {name}: ONNX (no NMS) exported, max |onnxruntime - PyTorch| {diff:.2e}')
            onnx_spec = dict(kind='onnx', onnx_path=path)
            cases.append(Case('detector', name, 'onnxruntime, no NMS', size, onnx_spec,
                              build_runner(onnx_spec, threads), batch, stats['params'],
                              stats['flops']))
        log(f'  built {name}')
    for c in cases:
        c.reference = case_key('detector', 'RetinaNet-R50', c.variant)
    return [cases]


def predict_specs(detectors: Dict[str, str]) -> List[Tuple[str, str, Tuple[int, int], Dict]]:
    """``(model, variant, size, spec)`` of eager ``predict`` with NMS at bs=1, unfused and deployed, for
    each detector key of ``detectors`` at its size (HxW). Scores sit below ``score_thr``
    (:func:`scores_below_threshold`), so NMS sees few boxes and the rows compare the networks."""
    rows = []
    for det, size in detectors.items():
        config, name = resolve_detector(det)
        for variant, deploy in PREDICT_VARIANTS.items():
            rows.append((name, variant, parse_size(size),
                         dict(kind='detector', config=config, deploy=deploy, nms=True,
                              scores_below_threshold=True)))
    return rows


# ------------------------------------------------------------------------------------ device protocol
PRECISIONS = ('fp32', 'amp')


def amp_dtype(device: str) -> torch.dtype:
    """The autocast dtype of 'amp': float16 on CUDA (the paper's AMP), bfloat16 on the CPU."""
    return torch.float16 if torch.device(device).type == 'cuda' else torch.bfloat16


def device_runner(model: nn.Module, device: str, precision: str, channels_last: bool = False,
                  compile: bool = False) -> Callable:
    """``model`` in eval mode on ``device``, under autocast for ``precision='amp'``, optionally
    channels_last / torch.compile (as :func:`finish_runner`)."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}')
    run = finish_runner(model.to(device).eval(), dict(channels_last=channels_last, compile=compile))
    if precision == 'fp32':
        return run
    device_type, dtype = torch.device(device).type, amp_dtype(device)

    def autocast_run(x: torch.Tensor):
        with torch.autocast(device_type, dtype):
            return run(x)

    return autocast_run


def _variants(channels_last: bool, compile: bool) -> List[Tuple[str, Dict]]:
    """(label suffix, device_runner flags) of the deployed model's extra variants."""
    return ([(' + channels_last', dict(channels_last=True))] if channels_last else []) + \
        ([(' + torch.compile', dict(compile=True))] if compile else [])


def device_backbone_cases(archs: List[str], size: str, batches: List[int], seed: int, device: str,
                          precisions: Tuple[str, ...] = PRECISIONS, channels_last: bool = False,
                          compile: bool = False) -> List[List[Case]]:
    """Per batch size and arch: timm vs ours (unfused, deployed, + channels_last / torch.compile)
    with the same weights, in each precision; ratios against timm in the same precision.

    At 224 with batches 256 and 2048 and AMP this is the paper's GPU throughput protocol.
    """
    size = parse_size(size)
    window = _window(size)
    groups = []
    for arch in archs:
        same_weights, stats = _same_weight_backbones(arch, size, seed)
        models = [(label, model, {}, label) for label, model in same_weights.items()]
        models += [(f'ours deployed{suffix}', same_weights['ours deployed'], flags, 'ours deployed')
                   for suffix, flags in _variants(channels_last, compile)]
        name = f'EfficientViT-{arch.upper()}'
        runners = {(label, p): device_runner(copy.deepcopy(model), device, p, **flags)
                   for label, model, flags, _ in models for p in precisions}
        for batch in batches:
            group = f'backbone@{device} bs{batch}'
            groups.append([
                Case(group, name, f'{label}, {p}', size,
                     dict(kind='timm' if label == 'timm' else 'evit', arch=arch,
                          window_size=list(window), device=device, precision=p,
                          deploy='deployed' in label, **flags),
                     runners[label, p], batch, stats[base]['params'], stats[base]['flops'],
                     reference=case_key(group, name, f'timm, {p}'))
                for p in precisions for label, _, flags, base in models])
    return groups


def device_detector_cases(detectors: List[str], size: str, batch: int, seed: int, device: str,
                          log: Callable, precisions: Tuple[str, ...] = PRECISIONS,
                          channels_last: bool = False, compile: bool = False) -> List[List[Case]]:
    """RetinaNets BN-fused without NMS (raw maps) on ``device``, in each precision (+ channels_last /
    torch.compile); every case against RetinaNet-R50 measured the same way."""
    size = parse_size(size)
    group = f'detector@{device}'
    cases = []
    for det in detectors:
        torch.manual_seed(seed)
        raw = RawDetector(deploy_model(build_detector(DETECTORS[det]))).eval()
        stats = complexity(raw, torch.randn(1, 3, *size))
        name = DETECTOR_NAMES[det]
        for p in precisions:
            for suffix, flags in [('', {})] + _variants(channels_last, compile):
                variant = f'deployed, no NMS, {p}{suffix}'
                spec = dict(kind='detector', config=DETECTORS[det], deploy=True, device=device,
                            precision=p, **flags)
                cases.append(Case(group, name, variant, size, spec,
                                  device_runner(copy.deepcopy(raw), device, p, **flags), batch,
                                  stats['params'], stats['flops'],
                                  reference=case_key(group, 'RetinaNet-R50', variant)))
        log(f'  built {name} on {device}')
    return [cases]


def scores_below_threshold(detector: nn.Module) -> nn.Module:
    """Random weights: set the classification biases so that every score sits 10x below
    ``test_cfg.score_thr``, in place.

    Untrained scores are near the prior probability 0.01: below RetinaNet's threshold (0.05) but
    above RTMDet's (0.001), where every one of tens of thousands of candidates would enter NMS. With
    this, both families time their post-processing with few boxes (a lower bound, like a trained
    model on an empty image), and timings compare the networks.
    """
    head = detector.bbox_head
    prob = float(head.test_cfg.get('score_thr', 0.05)) / 10
    bias = float(torch.logit(torch.tensor(prob)))
    for name in ('retina_cls', 'rtm_cls'):
        for module in getattr(head, name, nn.Identity()).modules():
            if isinstance(module, nn.Conv2d):
                nn.init.constant_(module.bias, bias)
    return detector


# The variants of :func:`end2end_cases`.
EAGER = 'eager predict (deployed, NMS)'
ORT_FP32 = 'onnxruntime end2end fp32'
ORT_INT8 = 'onnxruntime end2end INT8'


def openvino_variant(precision: str) -> str:
    """The variant name of the end-to-end graph under OpenVINO in ``precision``."""
    return f'OpenVINO end2end {precision}'


def end2end_cases(detectors: List[str], size: str, seed: int, threads: int, tmpdir: str,
                  log: Callable, group: str = 'end2end', reference: Optional[str] = None,
                  openvino_detectors: Sequence[str] = (),
                  openvino_precisions: Sequence[str] = (),
                  checkpoints: Optional[Dict[str, str]] = None) -> List[List[Case]]:
    """Image tensor to final boxes at bs=1: eager ``predict`` (deployed, with NMS) vs the end-to-end
    ONNX graph (``deployment/end2end``) under onnxruntime in fp32 and INT8, every model exported
    the same way; for ``openvino_detectors``, also the fp32 graph under OpenVINO in each of
    ``openvino_precisions`` (:func:`openvino_precisions`).

    Ratios: with ``reference`` (a detector key), every row against that detector's row of the same
    variant; without, eager and fp32 rows against RetinaNet-R50's eager ``predict`` and INT8 and
    OpenVINO rows against the same model's fp32 graph under onnxruntime. Weights are random with
    scores below ``score_thr`` (:func:`scores_below_threshold`), so NMS sees few boxes in every
    variant; INT8 ranges are calibrated on two random tensors of the timed size, which is enough
    for timing and says nothing about accuracy. ``checkpoints`` (detector -> checkpoint file) loads
    trained weights instead, with the same score biases, so that NMS sees as few boxes as with random
    weights and the rows still compare the networks.
    """
    import numpy as np

    from ...deployment.end2end import OUTPUT_NAMES, wrap_end2end
    from ...deployment.onnx_export import check_end2end, export_onnx
    from ...deployment.quantize import quantize_int8
    size = parse_size(size)
    cases = []
    rng = np.random.default_rng(seed)
    eager, fp32, int8 = EAGER, ORT_FP32, ORT_INT8
    for det in detectors:
        config, name = resolve_detector(det)
        checkpoint = (checkpoints or {}).get(det)
        torch.manual_seed(seed)
        model = scores_below_threshold(deploy_model(build_detector(config, checkpoint)))
        img = torch.randn(1, 3, *size)
        path = export_onnx(wrap_end2end(model).eval(), os.path.join(tmpdir, f'{name}_e2e.onnx'),
                           img, OUTPUT_NAMES, output_axes={n: {0: 'batch'} for n in OUTPUT_NAMES})
        record = check_end2end(path, model, [img])[0]
        log(f"  {name}: end-to-end ONNX exported, {record['matched']}/{record['ref']} detections "
            "match predict")
        int8_path = quantize_int8(path, os.path.join(tmpdir, f'{name}_e2e.int8.onnx'),
                                  [rng.standard_normal((1, 3, *size), np.float32) for _ in range(2)],
                                  note='random tensors (timing only)')
        stats = complexity(RawDetector(model).eval(), img)
        specs = {eager: dict(kind='detector', config=config, checkpoint=checkpoint, deploy=True,
                             nms=True, scores_below_threshold=True),
                 fp32: dict(kind='onnx', onnx_path=path), int8: dict(kind='onnx', onnx_path=int8_path)}
        if det in openvino_detectors:
            specs.update({openvino_variant(p): dict(kind='openvino', onnx_path=path, precision=p)
                          for p in openvino_precisions})
        for variant, spec in specs.items():
            if reference is not None:
                ref = case_key(group, resolve_detector(reference)[1], variant)
            elif variant not in (eager, fp32):
                ref = case_key(group, name, fp32)
            else:
                ref = case_key(group, DETECTOR_NAMES['r50'], eager)
            run = (detector_runner(model, nms=True) if variant == eager
                   else build_runner(spec, threads))
            cases.append(Case(group, name, variant, size, spec, run, 0, stats['params'],
                              stats['flops'], ref))
        log(f'  built {name} ({", ".join(specs)})')
    return [cases]
