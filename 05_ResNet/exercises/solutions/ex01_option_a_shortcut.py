"""Exercise 01 (reference solution): the parameter-free shortcut of He et al., option A.

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
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"x must be a 4-D tensor (N, C, H, W); got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an int >= 1; got {stride!r}")
    c_in = x.shape[1]
    if not isinstance(out_channels, int) or out_channels < c_in:
        raise ValueError(f"out_channels must be an int >= the {c_in} input channels "
                         f"(option A only adds channels); got {out_channels!r}")
    if where not in ("end", "both"):
        raise ValueError(f"where must be 'end' or 'both'; got {where!r}")
    sub = x[:, :, ::stride, ::stride]  # (N, C_in, ceil(H/s), ceil(W/s))
    extra = out_channels - c_in
    before = extra // 2 if where == "both" else 0
    n, _, h, w = sub.shape
    zeros_before = sub.new_zeros(n, before, h, w)
    zeros_after = sub.new_zeros(n, extra - before, h, w)
    return torch.cat([zeros_before, sub, zeros_after], dim=1)  # (N, C_out, h, w)


def option_b_parameter_count(in_channels: int, out_channels: int) -> int:
    """Trainable parameters of an option-B projection shortcut: 1x1 conv (no bias) + BN.

    Inputs:  in_channels, out_channels >= 1 (ints).
    Returns: int, C_in C_out + 2 C_out (the conv weight, BN's gamma and beta).
    """
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    return in_channels * out_channels + 2 * out_channels


def shortcut_parameter_overhead(layers, block: str = "basic") -> int:
    """Parameters that option B adds over option A in an ImageNet ResNet.

    Only the first block of stages 2, 3 and 4 changes shape (and stage 1's first block
    for bottlenecks, 64 -> 256 channels); option A costs nothing there, option B one
    projection each. Every other shortcut is the identity in both.

    Inputs:  layers - four ints (blocks per stage; only checked, the count does not depend
             on them); block - "basic" or "bottleneck".
    Returns: int, e.g. 172,032 + 2 x 896 = 173,824 for ResNet-18 and ResNet-34.
    """
    layers = tuple(layers)
    if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
        raise ValueError(f"layers must be four ints >= 1; got {layers!r}")
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck'; got {block!r}")
    expansion = 1 if block == "basic" else 4
    total, c_in = 0, 64
    for planes in (64, 128, 256, 512):
        c_out = planes * expansion
        if c_out != c_in or planes != 64:  # a stride-2 stage, or a channel change
            total += option_b_parameter_count(c_in, c_out)
        c_in = c_out
    return total
