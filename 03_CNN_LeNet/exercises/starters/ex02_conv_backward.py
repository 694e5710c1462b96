"""Exercise 02 (starter): the convolution backward pass by im2col and col2im.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 03_CNN_LeNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``03_CNN_LeNet/exercises/02_conv_backward.md``.
Use NumPy only. For x (N, C_in, H, W), W (C_out, C_in, kH, kW), b (C_out,):

    Y_mat = X_col @ W_col + b,   X_col = im2col(x) (N H_out W_out, C_in kH kW),
                                 W_col = W.reshape(C_out, -1).T (C_in kH kW, C_out)
    dW_col = X_col^T dY_mat,     db = dY_mat^T 1,     dx = col2im(dY_mat W_col^T)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view  # noqa: F401 (you will want it)


def _pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints -> (height, width) pair of Python ints, or raise ValueError."""
    pair = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them; got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_images(x, name: str = "x") -> np.ndarray:
    """Return x as a float (N, C, H, W) array (float32 kept, else float64), or raise ValueError."""
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"{name} must be a 4-D array (N, C, H, W); got shape {x.shape}")
    return x if x.dtype == np.float32 else x.astype(np.float64)


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((H + 2p - k) / s) + 1, or a ValueError when the kernel does not fit."""
    if kernel > size + 2 * padding:
        raise ValueError(f"kernel size {kernel} is larger than the padded input "
                         f"{size} + 2 * {padding}")
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kernel_size, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Copy every kH x kW patch of the zero-padded input into one row.

        cols[(n H_out + i) W_out + j, (c kH + u) kW + v] = x_pad[n, c, s i + u, s j + v]

    Inputs:  x (N, C, H, W) float; kernel_size int or (kH, kW); stride s >= 1; padding p >= 0.
    Returns: cols (N * H_out * W_out, C * kH * kW), x's float dtype.
    """
    raise NotImplementedError("im2col: "
                              "sliding_window_view; rows ordered (n, i, j), columns (c, u, v)")


def col2im(cols, x_shape, kernel_size, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The transpose of im2col: add every entry of cols back to the pixel it was copied from.

    A pixel that lies in m windows receives m contributions (a scatter-add, not an
    assignment); contributions that land in the padding are dropped by the final crop.

    Inputs:  cols (N * H_out * W_out, C * kH * kW) float; x_shape (N, C, H, W) of the input
             that im2col read; kernel_size, stride, padding as for im2col.
    Returns: (N, C, H, W) array, cols' float dtype.
    """
    raise NotImplementedError("col2im: "
                              "scatter-ADD the rows back, one kernel offset (u, v) at a time")


def _check_conv(x, W, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return x (N, C_in, H, W), W (C_out, C_in, kH, kW), b (C_out,) (zeros for None), or raise."""
    x = _check_images(x)
    W = np.asarray(W, dtype=x.dtype)
    if W.ndim != 4 or W.shape[1] != x.shape[1]:
        raise ValueError(f"W must have shape (C_out, C_in, kH, kW) with C_in = {x.shape[1]} "
                         f"(the channels of x); got {W.shape}")
    b = np.zeros(W.shape[0], dtype=x.dtype) if b is None else np.asarray(b, dtype=x.dtype)
    if b.shape != (W.shape[0],):
        raise ValueError(f"b must have shape (C_out,) = ({W.shape[0]},); got {b.shape}")
    return x, W, b


def conv2d_forward(x, W, b, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Cross-correlation as F.conv2d computes it, by one matrix product.

        Y_mat = im2col(x) @ W.reshape(C_out, -1).T + b       (N H_out W_out, C_out)

    Inputs:  x (N, C_in, H, W); W (C_out, C_in, kH, kW); b (C_out,) or None; stride; padding.
    Returns: y (N, C_out, H_out, W_out), x's float dtype.
    """
    raise NotImplementedError("conv2d_forward: "
                              "im2col(x) @ W.reshape(C_out, -1).T + b, then back to NCHW")


def conv2d_backward(dy, x, W, stride: int = 1, padding: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a scalar loss with respect to x, W and b, given dy = dL/dy.

        dW_col = X_col^T dY_mat     db = dY_mat^T 1     dx = col2im(dY_mat W_col^T)

    Inputs:  dy (N, C_out, H_out, W_out); x and W as passed to conv2d_forward; stride; padding.
    Returns: (dx (N, C_in, H, W), dW (C_out, C_in, kH, kW), db (C_out,)), x's float dtype.
    """
    raise NotImplementedError("conv2d_backward: "
                              "dW_col = X_col^T dY_mat, db = sums, dx = col2im(dY_mat W_col^T)")


def input_gradient_full_convolution(dy, W, padding: int = 0) -> np.ndarray:
    """dL/dx of a stride-1 convolution, as a "full" convolution of dy with the flipped kernel.

        dx_pad = conv2d(pad_{k-1}(dy), W_flip),   W_flip[c, o, u, v] = W[o, c, kH-1-u, kW-1-v]
        dx     = dx_pad cropped by the forward's padding p on every side

    Inputs:  dy (N, C_out, H_out, W_out); W (C_out, C_in, kH, kW); padding p of the forward.
    Returns: dx (N, C_in, H, W) with H = H_out + kH - 1 - 2p, dy's float dtype.
    """
    raise NotImplementedError("input_gradient_full_convolution: "
                              "pad dy by k-1, flip W in space, swap its channel axes")
