"""Evaluate a detector checkpoint (MMDetection's tools/test.py conventions, plus ``--fuse``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--show-dir DIR]
                                           [--fuse] [--cfg-options k=v ...] [--launcher ...]

The checkpoint is loaded strictly: a missing or unexpected key is an error, never a silently random
layer. mmdet 2.x checkpoints (the official EfficientViT releases) load as they are.
"""
import argparse
import os.path as osp

from mmdet.engine.hooks.utils import trigger_visualization_hook
from mmdet.evaluation import DumpDetResults
from mmdet.registry import RUNNERS
from mmengine.model import is_model_wrapper
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model
from torch.nn.modules.batchnorm import _BatchNorm

import mmdet_efficientvit  # noqa: F401  (registers our models)
from mmdet_efficientvit.errors import SetupError
from mmdet_efficientvit.models import EfficientViT
from mmdet_efficientvit.models.utils import (deploy_model, explain_detector_mismatch,
                                             read_checkpoint, unwrap_checkpoint)
from mmdet_efficientvit.tools_support import (check_data_paths, config_from_args, parse_common_args,
                                              setup_cpu_distributed, short_errors,
                                              teardown_distributed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the directory to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save painted images to work_dir/timestamp/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument('--fuse', action='store_true',
                        help='fold every BatchNorm into its conv before evaluating (switch_to_deploy for '
                        'EfficientViT, mmcv fuse_conv_bn for the rest)')
    return parse_common_args(parser)


def main() -> None:
    args = parse_args()
    cfg = config_from_args(args)
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'error: --out must name a .pkl file, got {args.out}')
    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)
    # The checkpoint is loaded below (strictly, and before --fuse), not by the runner.
    cfg.load_from, cfg.resume = None, False

    with short_errors(cfg):
        if not osp.isfile(args.checkpoint):
            raise SetupError(f'checkpoint not found: {args.checkpoint}')
        check_data_paths(cfg, ['test'])
        # read once, safely (a file that is no checkpoint is one message); loaded from this dict below
        checkpoint = read_checkpoint(args.checkpoint)
        setup_cpu_distributed(cfg)
        runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        try:
            # into the model, not through runner.load_checkpoint, whose after_load_checkpoint hooks
            # run before before_run: EMAHook (RTMDet configs) has no EMA model then. runner.test()
            # builds it from the loaded weights, which are the EMA ones (EMAHook saves them so).
            # mmengine's load_checkpoint after its read (the runner and DetInferencer call it so too).
            _load_checkpoint_to_model(model, checkpoint, strict=True, logger='current')
        except RuntimeError as e:
            if 'do not match exactly' not in str(e):  # mmengine's strict-loading report
                raise
            state_dict, _ = unwrap_checkpoint(checkpoint)
            raise SetupError(
                f'{args.checkpoint} does not fit the model of {args.config}: '
                f'{explain_detector_mismatch(model, state_dict, EfficientViT.arch_zoo)} Use the '
                'checkpoint of this config, or the config the checkpoint was trained with') from None
        if args.fuse:
            bn_before = sum(isinstance(m, _BatchNorm) for m in model.modules())
            deploy_model(model)
            bn_after = sum(isinstance(m, _BatchNorm) for m in model.modules())
            print_log(f'--fuse: folded {bn_before - bn_after} of {bn_before} BatchNorm layers into '
                      'convolutions', logger='current')
        if args.out is not None:
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        runner.test()
        del runner  # its DDP wrapper holds the process group: release it first
        teardown_distributed()


if __name__ == '__main__':
    main()
