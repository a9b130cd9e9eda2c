"""Batch normalisation folded into the convolution before it, for inference.

In eval mode a BatchNorm2d is a fixed per-channel scale and shift, so it can be merged into the weights and bias of
the convolution it follows: one layer fewer at each of ResNet-101's 104 convolutions, the same function up to float
rounding. It is what ONNX Runtime does to an export as it loads it. ResNet-101's forward pass, batch 8 at 224x224,
channels-last, 2-core AMD EPYC: 1.06x in fp32 and 1.09x in bf16 (benchmarks/RESULTS.md).

Only transformers' ResNet layers are folded (`ResNetConvLayer`, `ResNetShortCut`: convolution, then normalisation,
by their forward); any other model is left as it is.
"""

from __future__ import annotations

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval
from transformers.models.resnet.modeling_resnet import ResNetConvLayer, ResNetShortCut

FOLDABLE_LAYERS = (ResNetConvLayer, ResNetShortCut)


def foldable(layer: torch.nn.Module) -> bool:
    return (
        isinstance(layer, FOLDABLE_LAYERS)
        and isinstance(layer.convolution, torch.nn.Conv2d)
        and type(layer.normalization) is torch.nn.BatchNorm2d
        and layer.normalization.track_running_stats
    )


def fold_batch_norms(model: torch.nn.Module) -> int:
    """Folds each ResNet layer's BatchNorm2d into its convolution, in place, in eval mode; returns how many.

    Fold in fp32 and cast afterwards: the merged weights are then rounded once, not twice.

    Raises:
        ValueError: when the model is in training mode (its batch statistics are not fixed there).
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode: call model.eval() first.")
    folded = 0
    for layer in model.modules():
        if foldable(layer):
            layer.convolution = fuse_conv_bn_eval(layer.convolution, layer.normalization)
            layer.normalization = torch.nn.Identity()
            folded += 1
    return folded
