"""Train a detector with an EfficientViT backbone (MMDetection's tools/train.py conventions).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--auto-scale-lr]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os.path as osp

from mmdet.registry import RUNNERS
from mmengine.runner import Runner

import mmdet_efficientvit  # noqa: F401  (registers our models)
from mmdet_efficientvit.cli import (check_data_paths, config_from_args, parse_common_args,
                                    setup_cpu_distributed, short_errors, teardown_distributed)
from mmdet_efficientvit.errors import SetupError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='enable automatically scaling LR')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or, without a path, from the latest checkpoint in the '
        'work directory')
    return parse_common_args(parser)


def main() -> None:
    args = parse_args()
    cfg = config_from_args(args)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit('error: --auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume

    with short_errors():
        if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
            raise SetupError(f'--resume: checkpoint not found: {args.resume}')
        splits = ['train'] + (['val'] if cfg.get('val_cfg') and cfg.get('val_dataloader') else [])
        check_data_paths(cfg, splits)
        setup_cpu_distributed(cfg)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        runner.train()
        teardown_distributed()


if __name__ == '__main__':
    main()
