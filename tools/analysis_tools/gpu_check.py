"""GPU check: CUDA vs CPU parity of the backbone, one AMP training step of backbone + neck, and the
paper's backbone throughput table (ours vs timm with the same weights), in one short run.

    python tools/analysis_tools/gpu_check.py [--device cuda] [--archs m0 ... m5] [--out DIR]

Checks (each PASS/FAIL; exit status 1 if any fails), tolerances from
``mmdet_efficientvit/analysis/precision.py``:

* parity: our backbone (unfused and BN-folded, random weights with non-trivial BatchNorms) on the
  device against the same model in fp32 on the CPU, at 224x224 (bs 2) and at a detection size with
  padded windows (bs 1): fp32 with TF32 off (tolerance 1e-4), and autocast float16 and bfloat16; a
  second pass must agree with the first;
* train step: M4 backbone + RetinaNet neck as the configs build them, one step under autocast float16
  with a dynamic loss scale (``torch.amp.GradScaler``; overflowing steps are skipped as in training)
  and one in bfloat16: finite, non-zero gradients for every parameter, along the fp32 CPU gradients
  (cosine), and a step taken;
* throughput: ``benchmark.py``'s device protocol, AMP only: timm vs ours unfused / deployed /
  deployed + channels_last at 224, bs 256 and 2048.

It needs torch, timm, mmengine, mmdet and mmcv's Python code, but *not* mmcv's compiled ops: where
``mmcv._ext`` does not import (``mmcv-lite``, a build without MMCV_WITH_OPS), the script puts a stand-in
module in its place before importing the package, so that mmdet's and our imports (which reach
``mmcv.ops`` and our import guard) succeed; any compiled op called through it raises. The backbone and
the neck use none, so the check runs on a machine where building mmcv's ops does not fit. Only this
script does this; the package's import guard still refuses a stack without ops everywhere else.
With ``--device cpu`` it runs the same code on the CPU (bfloat16 only), e.g. to test it here.
"""
import argparse
import copy
import json
import os
import sys
import time
import types
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

STAND_IN_NOTE = ('mmcv._ext stand-in (gpu_check.py): mmcv was installed without its compiled ops; '
                 'this check does not use them')


def stand_in_for_compiled_ops() -> bool:
    """Put a stand-in for ``mmcv._ext`` in ``sys.modules`` if the real one does not import.

    mmcv's op modules ask ``ext_loader.load_ext`` for their functions at import time (``hasattr``
    checks); the stand-in has every name, and each raises when called. Returns whether it was needed.
    """
    try:
        import mmcv._ext  # noqa: F401
        return False
    except ImportError:
        pass
    stand_in = types.ModuleType('mmcv._ext', STAND_IN_NOTE)

    def missing(name: str) -> Callable:
        if name.startswith('__'):
            raise AttributeError(name)

        def op(*args, **kwargs):
            raise RuntimeError(f'mmcv op {name} is not compiled here ({STAND_IN_NOTE})')
        return op

    stand_in.__getattr__ = missing
    sys.modules['mmcv._ext'] = stand_in
    return True


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda', help='cuda (default), cuda:N, or cpu (a dry run)')
    parser.add_argument('--parity-archs', nargs='+', default=['m0', 'm4'])
    parser.add_argument('--det-size', default='320x512', help='parity input with padded windows, HxW')
    parser.add_argument('--train-arch', default='m4')
    parser.add_argument('--train-size', default='512x640', help='train-step input (bs 2), HxW')
    parser.add_argument('--archs', nargs='+', default=['m0', 'm1', 'm2', 'm3', 'm4', 'm5'],
                        help='throughput table archs')
    parser.add_argument('--batch-sizes', nargs='+', type=int, default=[256, 2048])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--min-run-time', type=float, default=0.2)
    parser.add_argument('--no-throughput', action='store_true')
    parser.add_argument('--out', help='folder for gpu_check.json and the throughput table (.csv/.md)')
    return parser.parse_args(argv)


def autocast_dtypes(device: str) -> List[torch.dtype]:
    """float16 and bfloat16 on CUDA (bfloat16 where the GPU has it); bfloat16 on the CPU."""
    if torch.device(device).type != 'cuda':
        return [torch.bfloat16]
    return [torch.float16] + ([torch.bfloat16] if torch.cuda.is_bf16_supported() else [])


def check_parity(args, log) -> List[Dict]:
    """The backbone on the device (fp32, autocast) against fp32 on the CPU."""
    from mmdet_efficientvit.analysis.precision import TOLERANCE, relative_error
    from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm
    from mmdet_efficientvit.model_zoo import CLS_WINDOW_SIZE
    from mmdet_efficientvit.models.builders import build_backbone
    from mmdet_efficientvit.models.utils import deploy_model
    from mmdet_efficientvit.tools_support import parse_size

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 for the parity rows
    torch.backends.cudnn.allow_tf32 = False
    rows = []
    for arch in args.parity_archs:
        for size, batch, window in (((224, 224), 2, CLS_WINDOW_SIZE), (parse_size(args.det_size), 1,
                                                                       (7, 7, 7))):
            torch.manual_seed(0)
            unfused = randomize_batchnorm(build_backbone(arch, window_size=window))
            for variant, cpu_model in (('unfused', unfused),
                                       ('deployed', deploy_model(copy.deepcopy(unfused)))):
                x = torch.randn(batch, 3, *size)
                model = copy.deepcopy(cpu_model).to(args.device)
                with torch.inference_mode():
                    ref = cpu_model(x)
                    xd = x.to(args.device)
                    for dtype in [torch.float32] + autocast_dtypes(args.device):
                        name = str(dtype).replace('torch.', '')
                        with torch.autocast(torch.device(args.device).type, dtype,
                                            enabled=dtype != torch.float32):
                            first, second = model(xd), model(xd)
                        err = relative_error(first, ref)
                        repeat_err = relative_error(second, first)
                        ok = err <= TOLERANCE[name] and repeat_err <= TOLERANCE[name]
                        rows.append(dict(arch=arch, variant=variant, size=f'{size[0]}x{size[1]}',
                                         batch=batch, dtype=name, rel_err=err, repeat_err=repeat_err,
                                         tolerance=TOLERANCE[name], ok=ok))
                        log(f'  parity {arch} {variant} {size[0]}x{size[1]} {name}: max rel err '
                            f'{err:.2e} (tolerance {TOLERANCE[name]:.0e}), second pass '
                            f'{repeat_err:.1e} -> {"PASS" if ok else "FAIL"}')
    return rows


def _train_step(backbone, neck, x, device: str, dtype, max_tries: int = 16) -> Dict:
    """One SGD step; autocast to ``dtype`` (None: fp32), float16 through a dynamic loss scale.

    As in training, the scaler skips a step whose scaled gradients overflow and halves the scale; the
    step reported is the first one it takes (``skipped`` counts the ones before it).
    """
    device_type = torch.device(device).type
    params = list(backbone.parameters()) + list(neck.parameters())
    before = [p.detach().clone() for p in params]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device_type, enabled=dtype == torch.float16)
    for skipped in range(max_tries):
        opt.zero_grad(set_to_none=False)
        with torch.autocast(device_type, dtype or torch.float32, enabled=dtype is not None):
            loss = sum(o.float().square().mean() for o in neck(backbone(x.to(device))))
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        grads = [p.grad.detach().float().cpu() for p in params]
        overflow = not all(torch.isfinite(g).all() for g in grads)
        scale = scaler.get_scale() if scaler.is_enabled() else 1.
        scaler.step(opt)
        scaler.update()
        if not overflow or not scaler.is_enabled():
            break
    return dict(loss=loss.item(), grads=grads, scale=scale, skipped=skipped,
                moved=sum(not torch.equal(p.detach(), b) for p, b in zip(params, before)),
                count=len(params))


def check_train_step(args, log) -> List[Dict]:
    """Backbone + neck, one AMP step per autocast dtype, against the fp32 step on the CPU."""
    from mmdet_efficientvit.analysis.precision import GRADIENT_COSINE
    from mmdet_efficientvit.deployment.check_weights import randomize_batchnorm
    from mmdet_efficientvit.models.builders import build_backbone_and_neck
    from mmdet_efficientvit.tools_support import parse_size
    torch.manual_seed(0)
    backbone, neck = build_backbone_and_neck(args.train_arch)
    randomize_batchnorm(backbone)  # non-zero BN weights: every branch gets a gradient
    x = torch.randn(2, 3, *parse_size(args.train_size))
    ref = _train_step(copy.deepcopy(backbone).train(), copy.deepcopy(neck).train(), x, 'cpu', None)
    ref_flat = torch.cat([g.flatten() for g in ref['grads']])
    rows = []
    for dtype in autocast_dtypes(args.device):
        step = _train_step(copy.deepcopy(backbone).to(args.device).train(),
                           copy.deepcopy(neck).to(args.device).train(), x, args.device, dtype)
        finite = all(torch.isfinite(g).all() for g in step['grads'])
        nonzero = sum(bool(g.abs().sum() > 0) for g in step['grads'])
        cosine = F.cosine_similarity(torch.cat([g.flatten() for g in step['grads']]).double(),
                                     ref_flat.double(), dim=0).item()
        # moved: the step was taken (a skipped one moves nothing); parameters whose update is below
        # their float32 resolution stay put, as they would in training
        ok = finite and nonzero == step['count'] and step['moved'] > 0 and cosine > GRADIENT_COSINE
        name = str(dtype).replace('torch.', '')
        rows.append(dict(arch=args.train_arch, dtype=name, loss=step['loss'], loss_fp32=ref['loss'],
                         finite=finite, nonzero_grads=nonzero, params=step['count'],
                         moved=step['moved'], grad_cosine=cosine, loss_scale=step['scale'],
                         skipped_steps=step['skipped'], ok=ok))
        log(f'  train step {args.train_arch} + neck, {name}: loss {step["loss"]:.4f} (fp32 CPU '
            f'{ref["loss"]:.4f}), {nonzero}/{step["count"]} non-zero finite={finite}, cosine to fp32 '
            f'{cosine:.5f}, {step["moved"]} moved, loss scale {step["scale"]:g} '
            f'({step["skipped"]} overflowing steps skipped first) -> '
            f'{"PASS" if ok else "FAIL"}')
    return rows


def throughput_table(args, log) -> List:
    """benchmark.py's device protocol, AMP: ours vs timm (the paper's GPU throughput protocol)."""
    from mmdet_efficientvit.analysis.benchmark.cases import device_backbone_cases
    from mmdet_efficientvit.analysis.benchmark.measure import time_group

    if torch.device(args.device).type == 'cuda':
        torch.backends.cudnn.benchmark = True
    groups = device_backbone_cases(args.archs, '224', args.batch_sizes, 0, args.device, ('amp', ),
                                   channels_last=True)
    for group in groups:
        per_pass = time_group(group, group[0].batch, args.repeats, 1, args.min_run_time, log,
                              args.device)
        for c in group:
            c.throughput = group[0].batch / per_pass[c.key]
        log(f'  {group[0].model} bs {group[0].batch}: ' + ', '.join(
            f'{c.variant} {c.throughput:.0f} img/s' for c in group))
    return [c for g in groups for c in g]


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:6.1f}s] {msg}', flush=True)

    if torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        print(f'error: --device {args.device}, but torch {torch.__version__} sees no CUDA GPU; '
              'run with --device cpu for a dry run', file=sys.stderr)
        return 2
    stand_in = stand_in_for_compiled_ops()
    import timm

    import mmdet_efficientvit  # noqa: F401  (the guard passes with the stand-in)
    device_name = (torch.cuda.get_device_name(args.device)
                   if torch.device(args.device).type == 'cuda' else 'CPU')
    log(f'torch {torch.__version__} (CUDA {torch.version.cuda}), timm {timm.__version__}, '
        f'{device_name}; mmcv compiled ops: {"absent (stand-in)" if stand_in else "present"}')
    log('parity of the backbone against fp32 on the CPU')
    report = dict(device=device_name, torch=torch.__version__, cuda=torch.version.cuda,
                  timm=timm.__version__, mmcv_ops_stand_in=stand_in, parity=check_parity(args, log))
    log('one training step of backbone + neck')
    report['train_step'] = check_train_step(args, log)
    table = ''
    if not args.no_throughput:
        from mmdet_efficientvit.analysis.benchmark.report import markdown_table, write_csv
        log('throughput, AMP, ours vs timm with the same weights')
        cases = throughput_table(args, log)
        table = markdown_table(cases)
        print(table)
        report['throughput'] = [dict(model=c.model, variant=c.variant, batch=c.batch,
                                     img_s=c.throughput) for c in cases]
        if args.out:
            write_csv(cases, os.path.join(args.out, 'throughput.csv'), dict(device=device_name))
    failed = [r for r in report['parity'] + report['train_step'] if not r['ok']]
    report['ok'] = not failed
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'gpu_check.json'), 'w') as f:
            json.dump(report, f, indent=1)
        with open(os.path.join(args.out, 'throughput.md'), 'w') as f:
            f.write(table + f'\n\n{device_name}, torch {torch.__version__}\n')
    log(f'{"ALL CHECKS PASS" if not failed else f"{len(failed)} CHECKS FAIL"} on {device_name}')
    return 0 if not failed else 1


if __name__ == '__main__':
    sys.exit(main())
