"""Exercise 03 (starter): dilated, grouped and depthwise separable convolutions.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 03_CNN_LeNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``03_CNN_LeNet/exercises/03_dilated_grouped_conv.md``.
Use NumPy only. For x (N, C_in, H, W) and W (C_out, C_in / g, kH, kW), output channel o in
group t = o // (C_out / g) reads only the input channels of group t:

    y[n, o, i, j] = b[o] + sum_(c < C_in/g) sum_(u,v) W[o, c, u, v]
                                            * x_pad[n, t C_in/g + c, s i + d u, s j + d v]
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view  # noqa: F401 (you will want it)


def _check_images(x, name: str = "x") -> np.ndarray:
    """Return x as a float (N, C, H, W) array (float32 kept, else float64), or raise ValueError."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be a 4-D array (N, C, H, W); got shape {x.shape}")
    return x if x.dtype == np.float32 else x.astype(np.float64)


def _check_positive(**values) -> None:
    """Raise ValueError unless every value is an int >= 1 (padding: >= 0)."""
    for name, value in values.items():
        low = 0 if name == "padding" else 1
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an int >= {low}; got {value!r}")


def conv2d_general(x, W, b=None, stride: int = 1, padding: int = 0, dilation: int = 1,
                   groups: int = 1) -> np.ndarray:
    """F.conv2d(x, W, b, stride, padding, dilation, groups) in NumPy.

    Steps: pad; take windows spanning d (k - 1) + 1 pixels and keep every d-th tap; split
    channels into groups; contract each group's windows with its kernels (einsum).

    Inputs:  x (N, C_in, H, W); W (C_out, C_in / groups, kH, kW); b (C_out,) or None;
             stride, dilation, groups >= 1, padding >= 0 (ints); C_in and C_out divisible by
             groups.
    Returns: y (N, C_out, H_out, W_out), x's float dtype, with
             H_out = floor((H + 2p - d (kH - 1) - 1) / s) + 1.
    """
    raise NotImplementedError("conv2d_general: "
                              "windows of span d(k-1)+1, keep every d-th tap, einsum per group")


def dilate_kernel(W, dilation: int) -> np.ndarray:
    """Insert dilation - 1 zeros between neighbouring taps of every kernel.

    A convolution with the result (dilation 1) equals one with W and this dilation.

    Inputs:  W (C_out, C_in_per_group, kH, kW); dilation d >= 1.
    Returns: (C_out, C_in_per_group, d (kH - 1) + 1, d (kW - 1) + 1), W's float dtype.
    """
    raise NotImplementedError("dilate_kernel: "
                              "zeros of the dilated size, then out[:, :, ::d, ::d] = W")


def depthwise_separable_conv(x, W_depthwise, W_pointwise, stride: int = 1,
                             padding: int = 0) -> np.ndarray:
    """A depthwise convolution (one kH x kW kernel per channel) then a 1 x 1 convolution.

        z = conv2d(x, W_depthwise, groups=C_in, stride, padding)     (N, C_in, H_out, W_out)
        y = conv2d(z, W_pointwise)                                    (N, C_out, H_out, W_out)

    C_in kH kW + C_in C_out weights instead of C_out C_in kH kW. No biases.

    Inputs:  x (N, C_in, H, W); W_depthwise (C_in, 1, kH, kW); W_pointwise (C_out, C_in, 1, 1).
    Returns: y (N, C_out, H_out, W_out), x's float dtype.
    """
    raise NotImplementedError("depthwise_separable_conv: "
                              "conv2d_general with groups=C_in, then a 1 x 1 conv2d_general")
