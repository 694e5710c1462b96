"""Exercise 01 (starter): the parameter-free shortcut of He et al., option A.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 05_ResNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

Section 3.3 of the paper: when a block changes the number of channels (and halves the
resolution), the identity shortcut x cannot be added to F(x) as it is. Option A keeps the
shortcut free of parameters: "the shortcut still performs identity mapping, with extra zero
entries padded for increasing dimensions", and the stride-2 subsampling of the block is
matched by taking every second pixel. Option B uses a 1x1 convolution (with BN) instead, a
projection W_s x (equation 2); option C projects on every shortcut. Table 3 compares them:
B is slightly better than A on ImageNet; the CIFAR networks of section 4.2 use A throughout.

    y = F(x) + pad_channels(x[:, :, ::s, ::s])          (option A, eq. 1 with a padded x)
    y = F(x) + BN(W_s * x)                               (option B, eq. 2)

The task text is in ``05_ResNet/exercises/01_option_a_shortcut.md``.
"""

from __future__ import annotations

import torch


def option_a_shortcut(x: torch.Tensor, out_channels: int, stride: int = 2,
                      where: str = "end") -> torch.Tensor:
    """Subsample x by ``stride`` and pad its channels with zeros up to ``out_channels``.

    Inputs:  x (N, C_in, H, W) float tensor; out_channels >= C_in; stride >= 1;
             where - "end": the C_in channels come first, zeros after them;
                     "both": (out_channels - C_in) // 2 zero channels before, the rest after
                     (the split used by many CIFAR ResNet implementations).
    Returns: (N, out_channels, ceil(H / stride), ceil(W / stride)), x's dtype and device.
             Pixel (i, j) of the output is pixel (stride i, stride j) of the input, the same
             pixel a 1x1 convolution with this stride (padding 0) reads.
    """
    raise NotImplementedError("option_a_shortcut: "
                              "x[:, :, ::stride, ::stride], then torch.cat with zero channels")


def option_b_parameter_count(in_channels: int, out_channels: int) -> int:
    """Trainable parameters of an option-B projection shortcut: 1x1 conv (no bias) + BN.

    Inputs:  in_channels, out_channels >= 1 (ints).
    Returns: int, C_in C_out + 2 C_out (the conv weight, BN's gamma and beta).
    """
    raise NotImplementedError("option_b_parameter_count: "
                              "the 1x1 conv's weights plus BN's gamma and beta")


def shortcut_parameter_overhead(layers, block: str = "basic") -> int:
    """Parameters that option B adds over option A in an ImageNet ResNet.

    Only the first block of stages 2, 3 and 4 changes shape (and stage 1's first block
    for bottlenecks, 64 -> 256 channels); option A costs nothing there, option B one
    projection each. Every other shortcut is the identity in both.

    Inputs:  layers - four ints (blocks per stage; only checked, the count does not depend
             on them); block - "basic" or "bottleneck".
    Returns: int, e.g. 172,032 + 2 x 896 = 173,824 for ResNet-18 and ResNet-34.
    """
    raise NotImplementedError("shortcut_parameter_overhead: "
                              "one option_b_parameter_count per shortcut that changes shape")
