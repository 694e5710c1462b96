"""Exercise 03 (starter): folding BatchNorm into the convolution before it.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 05_ResNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

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

import copy  # noqa: F401 (you will want it)

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
    raise NotImplementedError("fold_bn_parameters: "
                              "a = gamma / sqrt(var + eps), W' = a W, b' = a (b - mu) + beta")


def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new nn.Conv2d (with a bias) equal to ``bn(conv(x))`` with bn in eval mode.

    The inputs are not modified. Stride, padding, dilation and groups are kept.

    Inputs:  conv - nn.Conv2d with C_out output channels (bias or not);
             bn - nn.BatchNorm2d(C_out) with running statistics (track_running_stats).
    Returns: nn.Conv2d with bias=True, the dtype and device of conv's weight.
    """
    raise NotImplementedError("fold_bn: "
                              "fold_bn_parameters, then a copy of the conv with the new tensors")


def fold_basic_block(block: nn.Module) -> nn.Module:
    """A copy of a ResNet BasicBlock whose every (conv, BN) pair is folded into one conv.

    Works on blocks with attributes conv1, bn1, conv2, bn2 and an optional downsample
    nn.Sequential(conv, BN) (torchvision's and this lesson's layout). The folded BNs are
    replaced by nn.Identity, so forward() is unchanged and gives the same outputs in eval
    mode.

    Inputs:  block - a BasicBlock (not modified).
    Returns: the folded copy, in eval mode.
    """
    raise NotImplementedError("fold_basic_block: "
                              "fold_bn on every (conv, BN) pair; the BNs become nn.Identity")
