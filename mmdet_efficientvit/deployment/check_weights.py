"""Random weights that make a check meaningful: every BatchNorm with non-trivial parameters and
statistics, so that exports and parities compared on random models exercise every branch."""
import torch
import torch.nn as nn


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, in place.

    Freshly initialised EfficientViT has zero-initialised BN weights in many residual branches, so
    random-weight parity checks would compare near-zero branches; this makes every branch count.
    """
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                if module.affine:
                    module.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.5)
                    module.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


# one image of this size gives the stride-64 maps 13x19 positions to measure BatchNorm statistics on
CALIBRATION_SIZE = (800, 1216)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``model(*inputs)``, in place.

    Random weights in eval mode otherwise shrink activations layer by layer (e.g. CSPNeXt with
    PyTorch's default init), until a head sees nearly constant maps and ties its scores; with
    measured statistics every layer is normalised, as in a trained model. The affine parameters
    (e.g. from :func:`randomize_batchnorm`) are kept; the model is left in eval mode. The inputs
    must give the coarsest maps many positions per channel (:data:`CALIBRATION_SIZE`): statistics
    of a few positions are noisy and blow up the layers after them.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch gives its exact statistics
        norm.train()
    try:
        model(*inputs)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return model
