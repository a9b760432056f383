"""Fold every BatchNorm of a model into its convolutions for inference (``tools/test.py --fuse``,
ONNX export, the benchmarks)."""
import copy

import torch.nn as nn


def untie_shared_modules(model: nn.Module) -> nn.Module:
    """Give every repeated occurrence of a module in ``model``'s tree its own copy, in place.

    Folding rewrites a conv in place, once per BatchNorm that follows it: a conv shared by several
    branches with their own BNs (``RTMDetSepBNHead(share_conv=True)``: one conv per stacked layer,
    one BN per level) would get every branch's BN folded into it. Copies compute the same, so the
    untied model equals the tied one until it is folded.
    """
    seen = set()

    def visit(module: nn.Module) -> None:
        for name, child in list(module.named_children()):
            if id(child) in seen:
                child = copy.deepcopy(child)
                setattr(module, name, child)
            seen.add(id(child))
            visit(child)

    seen.add(id(model))
    visit(model)
    return model


def deploy_model(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm into its conv/linear, in place, and return the model in eval mode.

    Shared modules are untied first (:func:`untie_shared_modules`). Modules that define
    ``switch_to_deploy`` (the EfficientViT backbone) fold themselves, children included; everything
    else (ResNet, CSPNeXt, necks, heads) goes through mmcv's ``fuse_conv_bn``. Idempotent.
    """
    from mmcv.cnn import fuse_conv_bn

    def switch(module: nn.Module) -> None:
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
        else:
            for child in module.children():
                switch(child)

    untie_shared_modules(model)
    switch(model)
    return fuse_conv_bn(model).eval()
