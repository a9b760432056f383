"""Fold every BatchNorm of a model into its convolutions for inference (``tools/test.py --fuse``,
ONNX export, the benchmarks)."""
import torch.nn as nn


def deploy_model(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into its conv/linear, in place, and return the model in eval mode.

    Modules that define ``switch_to_deploy`` (the EfficientViT backbone) fold themselves, children
    included; everything else (ResNet, necks, heads) goes through mmcv's ``fuse_conv_bn``. Idempotent.
    """
    from mmcv.cnn import fuse_conv_bn

    def switch(module: nn.Module) -> None:
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
        else:
            for child in module.children():
                switch(child)

    switch(model)
    return fuse_conv_bn(model).eval()
