"""Exercise 02 (reference solution): the convolution backward pass by im2col and col2im.

For x (N, C_in, H, W), weights W (C_out, C_in, kH, kW), bias b (C_out,), stride s and
zero padding p (theory.md 1.4, 2):

    y[n, o, i, j] = b[o] + sum_{c,u,v} W[o, c, u, v] x_pad[n, c, s i + u, s j + v]

im2col copies the patch that each output position reads into one row, so that

    Y_mat = X_col @ W_col + b,    X_col (N H_out W_out, C_in kH kW),  W_col (C_in kH kW, C_out)

is a dense layer over patches. Its backward (lesson 02) gives, with dY_mat like Y_mat,

    dW_col = X_col^T dY_mat      db = sum of the rows of dY_mat      dX_col = dY_mat W_col^T

and col2im, the transpose of im2col, adds every row of dX_col back to the pixels it was
copied from (theory.md 3.5). For stride 1 the same dx is a "full" convolution of dy with
the kernel flipped in space and with its channel axes swapped (theory.md 3.4).

The task text is in ``03_CNN_LeNet/exercises/02_conv_backward.md``. NumPy only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


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
    x = _check_images(x)
    kh, kw = _pair(kernel_size, "kernel_size")
    n, c, h, w = x.shape
    h_out, w_out = _output_size(h, kh, stride, padding), _output_size(w, kw, stride, padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # A view, no copy: windows[n, c, i, j, u, v] = x_pad[n, c, s i + u, s j + v]
    windows = sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    windows = windows[:, :, :h_out, :w_out]  # (N, C, H_out, W_out, kH, kW)
    # rows ordered (n, i, j), columns (c, u, v): the reshape copies into a matrix
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c * kh * kw)


def col2im(cols, x_shape, kernel_size, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The transpose of im2col: add every entry of cols back to the pixel it was copied from.

    A pixel that lies in m windows receives m contributions (a scatter-add, not an
    assignment); contributions that land in the padding are dropped by the final crop.

    Inputs:  cols (N * H_out * W_out, C * kH * kW) float; x_shape (N, C, H, W) of the input
             that im2col read; kernel_size, stride, padding as for im2col.
    Returns: (N, C, H, W) array, cols' float dtype.
    """
    n, c, h, w = (int(v) for v in x_shape)
    kh, kw = _pair(kernel_size, "kernel_size")
    h_out, w_out = _output_size(h, kh, stride, padding), _output_size(w, kw, stride, padding)
    cols = np.asarray(cols)
    if cols.shape != (n * h_out * w_out, c * kh * kw):
        raise ValueError(f"cols must have shape (N*H_out*W_out, C*kH*kW) = "
                         f"({n * h_out * w_out}, {c * kh * kw}) for x_shape {tuple(x_shape)}; "
                         f"got {cols.shape}")
    patches = cols.reshape(n, h_out, w_out, c, kh, kw)
    x_pad = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    # One strided slice per kernel offset (u, v): kH kW vectorised additions, no pixel loop.
    for u in range(kh):
        for v in range(kw):
            x_pad[:, :, u:u + stride * h_out:stride, v:v + stride * w_out:stride] += (
                patches[:, :, :, :, u, v].transpose(0, 3, 1, 2))  # (N, C, H_out, W_out)
    return x_pad[:, :, padding:padding + h, padding:padding + w]


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
    x, W, b = _check_conv(x, W, b)
    n, c_out = x.shape[0], W.shape[0]
    kh, kw = W.shape[2:]
    h_out = _output_size(x.shape[2], kh, stride, padding)
    w_out = _output_size(x.shape[3], kw, stride, padding)
    cols = im2col(x, (kh, kw), stride, padding)  # (N H_out W_out, C_in kH kW)
    y_mat = cols @ W.reshape(c_out, -1).T + b  # (N H_out W_out, C_out)
    return y_mat.reshape(n, h_out, w_out, c_out).transpose(0, 3, 1, 2)


def conv2d_backward(dy, x, W, stride: int = 1, padding: int = 0
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a scalar loss with respect to x, W and b, given dy = dL/dy.

        dW_col = X_col^T dY_mat     db = dY_mat^T 1     dx = col2im(dY_mat W_col^T)

    Inputs:  dy (N, C_out, H_out, W_out); x and W as passed to conv2d_forward; stride; padding.
    Returns: (dx (N, C_in, H, W), dW (C_out, C_in, kH, kW), db (C_out,)), x's float dtype.
    """
    x, W, _ = _check_conv(x, W, None)
    c_out, kh, kw = W.shape[0], W.shape[2], W.shape[3]
    expected = (x.shape[0], c_out, _output_size(x.shape[2], kh, stride, padding),
                _output_size(x.shape[3], kw, stride, padding))
    dy = np.asarray(dy, dtype=x.dtype)
    if dy.shape != expected:
        raise ValueError(f"dy must have the output's shape {expected}; got {dy.shape}")
    cols = im2col(x, (kh, kw), stride, padding)  # (N H_out W_out, C_in kH kW)
    dy_mat = dy.transpose(0, 2, 3, 1).reshape(-1, c_out)  # (N H_out W_out, C_out), rows (n, i, j)
    w_col = W.reshape(c_out, -1).T  # (C_in kH kW, C_out)
    dW = (cols.T @ dy_mat).T.reshape(W.shape)  # X_col^T dY_mat, back to (C_out, C_in, kH, kW)
    db = dy_mat.sum(axis=0)  # one bias per map: sum over n, i, j
    dx = col2im(dy_mat @ w_col.T, x.shape, (kh, kw), stride, padding)
    return dx, dW, db


def input_gradient_full_convolution(dy, W, padding: int = 0) -> np.ndarray:
    """dL/dx of a stride-1 convolution, as a "full" convolution of dy with the flipped kernel.

        dx_pad = conv2d(pad_{k-1}(dy), W_flip),   W_flip[c, o, u, v] = W[o, c, kH-1-u, kW-1-v]
        dx     = dx_pad cropped by the forward's padding p on every side

    Inputs:  dy (N, C_out, H_out, W_out); W (C_out, C_in, kH, kW); padding p of the forward.
    Returns: dx (N, C_in, H, W) with H = H_out + kH - 1 - 2p, dy's float dtype.
    """
    dy = _check_images(dy, "dy")
    W = np.asarray(W, dtype=dy.dtype)
    if W.ndim != 4 or W.shape[0] != dy.shape[1]:
        raise ValueError(f"W must have shape (C_out, C_in, kH, kW) with C_out = {dy.shape[1]} "
                         f"(the channels of dy); got {W.shape}")
    kh, kw = W.shape[2:]
    dy_full = np.pad(dy, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    w_flipped = W[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C_in, C_out, kH, kW)
    dx_pad = conv2d_forward(dy_full, w_flipped, None)  # (N, C_in, H + 2p, W + 2p)
    h_pad, w_pad = dx_pad.shape[2:]
    if 2 * padding >= min(h_pad, w_pad):
        raise ValueError(f"padding {padding} leaves no input: dy and W give a padded input of "
                         f"{h_pad} x {w_pad}")
    return dx_pad[:, :, padding:h_pad - padding, padding:w_pad - padding]
