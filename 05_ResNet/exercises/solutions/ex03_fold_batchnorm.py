"""Exercise 03 (reference solution): folding BatchNorm into the convolution before it.

At inference a BatchNorm layer (Ioffe & Szegedy, 2015) no longer computes batch statistics:
it applies a fixed affine map per channel with its running mean mu and variance sigma^2,

    BN(z) = gamma (z - mu) / sqrt(sigma^2 + eps) + beta  =  a z + c,
    a = gamma / sqrt(sigma^2 + eps),   c = beta - a mu.

ResNet puts a BN after every convolution (section 3.4 of He et al.), and a convolution is
linear, so the pair is one convolution with scaled weights and a bias:

    BN(W * x + b) = (a W) * x + (a b + c),   a scaling output channel o of W by a[o].

Deployed ResNets fold every BN this way: one layer fewer per convolution, the same outputs.
It only holds in eval mode: in training BN normalises with the batch's own statistics.

The task text is in ``05_ResNet/exercises/03_fold_batchnorm.md``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_bn_parameters(weight: torch.Tensor, bias, running_mean: torch.Tensor,
                       running_var: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                       eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight and bias of conv followed by an eval-mode BN, as one convolution.

    Inputs:  weight (C_out, C_in / groups, kH, kW); bias (C_out,) or None;
             running_mean, running_var, gamma, beta (C_out,); eps > 0.
    Returns: (weight', bias'), shapes (C_out, C_in / groups, kH, kW) and (C_out,), with
             weight' = a weight (a per output channel), bias' = a (bias - mu) + beta,
             a = gamma / sqrt(var + eps).
    """
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError(f"weight must be a 4-D tensor (C_out, C_in/groups, kH, kW); got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    c_out = weight.shape[0]
    named = {"running_mean": running_mean, "running_var": running_var, "gamma": gamma,
             "beta": beta}
    if bias is not None:
        named["bias"] = bias
    for name, t in named.items():
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (c_out,):
            raise ValueError(f"{name} must be a tensor of shape ({c_out},), one value per "
                             f"output channel; got {getattr(t, 'shape', type(t).__name__)}")
    if bias is None:
        bias = torch.zeros_like(running_mean)
    scale = gamma / torch.sqrt(running_var + eps)  # a, (C_out,)
    new_weight = weight * scale.reshape(-1, 1, 1, 1)  # scale each output channel's kernel
    new_bias = scale * (bias - running_mean) + beta  # a (b - mu) + beta
    return new_weight, new_bias


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new nn.Conv2d (with a bias) equal to ``bn(conv(x))`` with bn in eval mode.

    The inputs are not modified. Stride, padding, dilation and groups are kept.

    Inputs:  conv - nn.Conv2d with C_out output channels (bias or not);
             bn - nn.BatchNorm2d(C_out) with running statistics (track_running_stats).
    Returns: nn.Conv2d with bias=True, the dtype and device of conv's weight.
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise TypeError(f"fold_bn expects (nn.Conv2d, nn.BatchNorm2d); got "
                        f"({type(conv).__name__}, {type(bn).__name__})")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"the BN normalises {bn.num_features} channels but the convolution "
                         f"has {conv.out_channels} output channels")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("the BN has no running statistics (track_running_stats=False): "
                         "it normalises every batch by itself and cannot be folded")
    gamma = bn.weight if bn.affine else torch.ones_like(bn.running_mean)
    beta = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        weight, bias = fold_bn_parameters(conv.weight, conv.bias, bn.running_mean,
                                          bn.running_var, gamma, beta, bn.eps)
        fused = copy.deepcopy(conv)  # keeps stride, padding, dilation, groups, padding_mode
        fused.weight = nn.Parameter(weight.detach().clone())
        fused.bias = nn.Parameter(bias.detach().clone())
    return fused


def fold_basic_block(block: nn.Module) -> nn.Module:
    """A copy of a ResNet BasicBlock whose every (conv, BN) pair is folded into one conv.

    Works on blocks with attributes conv1, bn1, conv2, bn2 and an optional downsample
    nn.Sequential(conv, BN) (torchvision's and this lesson's layout). The folded BNs are
    replaced by nn.Identity, so forward() is unchanged and gives the same outputs in eval
    mode.

    Inputs:  block - a BasicBlock (not modified).
    Returns: the folded copy, in eval mode.
    """
    for name in ("conv1", "bn1", "conv2", "bn2"):
        if not hasattr(block, name):
            raise ValueError(f"fold_basic_block expects a block with conv1, bn1, conv2, bn2; "
                             f"{type(block).__name__} has no {name!r}")
    folded = copy.deepcopy(block).eval()
    folded.conv1, folded.bn1 = fold_bn(block.conv1, block.bn1), nn.Identity()
    folded.conv2, folded.bn2 = fold_bn(block.conv2, block.bn2), nn.Identity()
    if getattr(block, "downsample", None) is not None:
        conv, bn = block.downsample[0], block.downsample[1]
        folded.downsample = nn.Sequential(fold_bn(conv, bn))
    return folded
