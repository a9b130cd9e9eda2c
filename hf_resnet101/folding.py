"""Batch normalisation folded into the convolution before it, for inference.

In eval mode a BatchNorm2d is a fixed per-channel scale and shift, so it can be merged into the weights and bias of
the convolution it follows: one layer fewer at each of ResNet-101's 104 convolutions, the same function up to float
rounding. It is what ONNX Runtime does to an export as it loads it. ResNet-101's forward pass, batch 8 at 224x224,
channels-last, 2-core AMD EPYC: 1.06x in fp32 and 1.09x in bf16 (benchmarks/RESULTS.md).

Only layers known to run a convolution straight into its normalisation are folded: transformers' ResNet layers
(`ResNetConvLayer`, `ResNetShortCut`), and timm's ResNet family (`timm.models.resnet.ResNet`: each block's
convN -> bnN, the stem's, and the convolution -> normalisation pairs of its `nn.Sequential` stems and shortcuts), by
their forward. Any other model is left as it is.
"""

from __future__ import annotations

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval
from transformers.models.resnet.modeling_resnet import ResNetConvLayer, ResNetShortCut

FOLDABLE_LAYERS = (ResNetConvLayer, ResNetShortCut)
# The (convolution, normalisation) attribute pairs a timm ResNet block and the network itself run back to back.
TIMM_RESNET_PAIRS = (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3"))


def foldable_pair(convolution: torch.nn.Module, normalization: torch.nn.Module) -> bool:
    return (
        isinstance(convolution, torch.nn.Conv2d)
        and type(normalization) is torch.nn.BatchNorm2d
        and normalization.track_running_stats
    )


def fold_attributes(owner: torch.nn.Module, convolution: str, normalization: str) -> int:
    """Folds `owner.<normalization>` into `owner.<convolution>`, leaving an Identity; returns 1 if it did, else 0."""
    conv, norm = getattr(owner, convolution, None), getattr(owner, normalization, None)
    if not foldable_pair(conv, norm):
        return 0
    setattr(owner, convolution, fuse_conv_bn_eval(conv, norm))
    setattr(owner, normalization, torch.nn.Identity())
    return 1


def fold_sequential(layers: torch.nn.Sequential) -> int:
    """Folds each BatchNorm2d of an `nn.Sequential` into the convolution right before it; returns how many."""
    folded = 0
    for index in range(len(layers) - 1):
        if foldable_pair(layers[index], layers[index + 1]):
            layers[index] = fuse_conv_bn_eval(layers[index], layers[index + 1])
            layers[index + 1] = torch.nn.Identity()
            folded += 1
    return folded


def fold_transformers_resnet(model: torch.nn.Module) -> int:
    folded = 0
    for layer in model.modules():
        if isinstance(layer, FOLDABLE_LAYERS):
            folded += fold_attributes(layer, "convolution", "normalization")
    return folded


def fold_timm_resnet(network: torch.nn.Module) -> int:
    """Folds a timm ResNet (plain, deep or average-pool stems and shortcuts); any other timm network is left."""
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet

    if not isinstance(network, ResNet):
        return 0
    folded = 0
    for module in [network, *network.modules()]:
        if module is network or isinstance(module, (BasicBlock, Bottleneck)):
            folded += sum(fold_attributes(module, conv, norm) for conv, norm in TIMM_RESNET_PAIRS)
            for child in (getattr(module, "conv1", None), getattr(module, "downsample", None)):
                if isinstance(child, torch.nn.Sequential):
                    folded += fold_sequential(child)
    stem = network.conv1
    if isinstance(stem, torch.nn.Sequential) and foldable_pair(stem[-1], network.bn1):  # a deep stem, then bn1
        stem[-1] = fuse_conv_bn_eval(stem[-1], network.bn1)
        network.bn1 = torch.nn.Identity()
        folded += 1
    return folded


def fold_batch_norms(model: torch.nn.Module) -> int:
    """Folds a ResNet's BatchNorm2d layers into their convolutions, in place, in eval mode; returns how many.

    Fold in fp32 and cast afterwards: the merged weights are then rounded once, not twice.

    Raises:
        ValueError: when the model is in training mode (its batch statistics are not fixed there).
    """
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode: call model.eval() first.")
    timm_network = getattr(model, "timm_model", None)  # transformers' TimmWrapper
    if timm_network is not None:
        return fold_timm_resnet(timm_network)
    return fold_transformers_resnet(model)
