"""Train a detector with an EfficientViT backbone (MMDetection's tools/train.py conventions).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp [--amp-dtype bfloat16]]
                                 [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os.path as osp

import torch
from mmdet.registry import RUNNERS
from mmengine.runner import Runner

import mmdet_efficientvit  # noqa: F401  (registers our models)
from mmdet_efficientvit.errors import SetupError
from mmdet_efficientvit.tools_support import (check_data_paths, config_from_args, parse_common_args,
                                              setup_cpu_distributed, short_errors,
                                              teardown_distributed)


AMP_DTYPES = ('float16', 'bfloat16')


def use_amp(cfg, dtype: str) -> None:
    """Train with mmengine's AmpOptimWrapper: autocast to ``dtype`` and a dynamic loss scale.

    AmpOptimWrapper asserts a GPU (or NPU/MLU/MUSA) device and its autocast raises for bfloat16 on a
    GPU without it; both are checked here first, for a one-line error instead of a traceback.
    """
    from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                                 is_npu_available)
    if not (is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()):
        raise SetupError('--amp trains on a GPU (mmengine\'s AmpOptimWrapper needs CUDA, NPU, MLU or '
                         'MUSA), and torch sees none here; train without --amp on the CPU')
    if dtype == 'bfloat16' and is_cuda_available() and not torch.cuda.is_bf16_supported():
        raise SetupError(f'--amp-dtype bfloat16: {torch.cuda.get_device_name()} has no bfloat16 '
                         'support; use --amp-dtype float16')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.optim_wrapper.dtype = dtype


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision on the GPU (mmengine AmpOptimWrapper: autocast '
                        'and a dynamic loss scale)')
    parser.add_argument('--amp-dtype', choices=AMP_DTYPES,
                        help='autocast dtype of --amp (implies it): float16 (default) or bfloat16 '
                        '(GPUs of compute capability 8.0 and newer)')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or, without a path, from the latest checkpoint in the '
        'work directory')
    return parse_common_args(parser)


def main() -> None:
    args = parse_args()
    cfg = config_from_args(args)

    if args.amp or args.amp_dtype:
        with short_errors():
            use_amp(cfg, args.amp_dtype or AMP_DTYPES[0])
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit('error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    with short_errors(cfg):
        if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
            raise SetupError(f'--resume: checkpoint not found: {args.resume}')
        splits = ['train'] + (['val'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
        check_data_paths(cfg, splits)
        setup_cpu_distributed(cfg)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        runner.train()
        del runner  # its DDP wrapper holds the process group: release it first
        teardown_distributed()


if __name__ == '__main__':
    main()
