"""Exercise 03 (reference solution): dilated, grouped and depthwise separable convolutions.

The general convolution of F.conv2d, for x (N, C_in, H, W) and W (C_out, C_in / g, kH, kW)
(theory.md 1.3, 1.6):

    y[n, o, i, j] = b[o] + sum_{c < C_in/g} sum_{u,v} W[o, c, u, v]
                                            * x_pad[n, t C_in/g + c, s i + d u, s j + d v]

where t = o // (C_out / g) is the group of output channel o: output group t reads only
input group t. dilation d spreads the taps d pixels apart; groups g cut the parameters
and the multiply-adds by g. g = C_in = C_out is a depthwise convolution, and a depthwise
convolution followed by a 1 x 1 convolution is a depthwise separable one.

The task text is in ``03_CNN_LeNet/exercises/03_dilated_grouped_conv.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    x = _check_images(x)
    _check_positive(stride=stride, padding=padding, dilation=dilation, groups=groups)
    W = np.asarray(W, dtype=x.dtype)
    n, c_in, h, w = x.shape
    if c_in % groups:
        raise ValueError(f"the {c_in} input channels cannot be split into {groups} groups")
    if W.ndim != 4 or W.shape[1] != c_in // groups or W.shape[0] % groups:
        raise ValueError(f"W must have shape (C_out, C_in / groups, kH, kW) = (C_out, "
                         f"{c_in // groups}, kH, kW) with C_out divisible by {groups}; "
                         f"got {W.shape}")
    c_out, c_group, kh, kw = W.shape
    span_h, span_w = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    if span_h > h + 2 * padding or span_w > w + 2 * padding:
        raise ValueError(f"the dilated kernel spans {span_h} x {span_w} pixels, more than the "
                         f"padded input {h + 2 * padding} x {w + 2 * padding}")
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # windows[n, c, i, j, u, v] = x_pad[n, c, s i + d u, s j + d v]
    windows = sliding_window_view(x_pad, (span_h, span_w), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride, ::dilation, ::dilation]
    h_out, w_out = windows.shape[2:4]
    # split channels: input group t is channels t*C_in/g ... ; output group t likewise
    windows = windows.reshape(n, groups, c_group, h_out, w_out, kh, kw)
    kernels = W.reshape(groups, c_out // groups, c_group, kh, kw)
    y = np.einsum("ngchwuv,gocuv->ngohw", windows, kernels, optimize=True)
    y = y.reshape(n, c_out, h_out, w_out)
    if b is not None:
        b = np.asarray(b, dtype=x.dtype)
        if b.shape != (c_out,):
            raise ValueError(f"b must have shape (C_out,) = ({c_out},); got {b.shape}")
        y = y + b[None, :, None, None]
    return y


def dilate_kernel(W, dilation: int) -> np.ndarray:
    """Insert dilation - 1 zeros between neighbouring taps of every kernel.

    A convolution with the result (dilation 1) equals one with W and this dilation.

    Inputs:  W (C_out, C_in_per_group, kH, kW); dilation d >= 1.
    Returns: (C_out, C_in_per_group, d (kH - 1) + 1, d (kW - 1) + 1), W's float dtype.
    """
    _check_positive(dilation=dilation)
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must be a 4-D array (C_out, C_in, kH, kW); got shape {W.shape}")
    W = W if W.dtype == np.float32 else W.astype(np.float64)
    c_out, c_in, kh, kw = W.shape
    dilated = np.zeros((c_out, c_in, dilation * (kh - 1) + 1, dilation * (kw - 1) + 1), W.dtype)
    dilated[:, :, ::dilation, ::dilation] = W  # the original taps, d apart
    return dilated


def depthwise_separable_conv(x, W_depthwise, W_pointwise, stride: int = 1,
                             padding: int = 0) -> np.ndarray:
    """A depthwise convolution (one kH x kW kernel per channel) then a 1 x 1 convolution.

        z = conv2d(x, W_depthwise, groups=C_in, stride, padding)     (N, C_in, H_out, W_out)
        y = conv2d(z, W_pointwise)                                    (N, C_out, H_out, W_out)

    C_in kH kW + C_in C_out weights instead of C_out C_in kH kW. No biases.

    Inputs:  x (N, C_in, H, W); W_depthwise (C_in, 1, kH, kW); W_pointwise (C_out, C_in, 1, 1).
    Returns: y (N, C_out, H_out, W_out), x's float dtype.
    """
    x = _check_images(x)
    c_in = x.shape[1]
    W_depthwise, W_pointwise = np.asarray(W_depthwise), np.asarray(W_pointwise)
    if W_depthwise.ndim != 4 or W_depthwise.shape[:2] != (c_in, 1):
        raise ValueError(f"W_depthwise must have shape (C_in, 1, kH, kW) = ({c_in}, 1, kH, kW); "
                         f"got {W_depthwise.shape}")
    if W_pointwise.ndim != 4 or W_pointwise.shape[1:] != (c_in, 1, 1):
        raise ValueError(f"W_pointwise must have shape (C_out, C_in, 1, 1) = (C_out, {c_in}, 1, "
                         f"1); got {W_pointwise.shape}")
    z = conv2d_general(x, W_depthwise, None, stride, padding, groups=c_in)  # spatial, per channel
    return conv2d_general(z, W_pointwise)  # mixes channels, per pixel
