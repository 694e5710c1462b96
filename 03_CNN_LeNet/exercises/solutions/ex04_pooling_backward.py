"""Exercise 04 (reference solution): max and average pooling, forward and backward.

Per example and channel, with a k x k window moved by a stride s (theory.md 4):

    max:      y[i, j] = max_{u,v < k} x[s i + u, s j + v]
    average:  y[i, j] = 1/k^2 sum_{u,v < k} x[s i + u, s j + v]

Backward (theory.md 4.1, 4.2):

    max:      dx[a, b] = sum of dy[i, j] over the windows (i, j) whose maximum is x[a, b]
    average:  dx[a, b] = 1/k^2 sum of dy[i, j] over the windows (i, j) that contain (a, b)

With overlapping windows (s < k) one pixel collects the gradients of several windows:
both backward passes scatter-ADD. Ties: the first maximum of a window in row-major order
takes its whole gradient, as PyTorch does on the CPU (np.argmax returns the first maximum).

The task text is in ``03_CNN_LeNet/exercises/04_pooling_backward.md``. NumPy only.
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


def _window(x_shape, kernel_size: int, stride: int | None) -> tuple[int, int, int, int]:
    """Check the window against the input; return (k, s, H_out, W_out)."""
    stride = kernel_size if stride is None else stride  # PyTorch's default: no overlap
    for name, value in (("kernel_size", kernel_size), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1; got {value!r}")
    h, w = x_shape[2], x_shape[3]
    if kernel_size > min(h, w):
        raise ValueError(f"the {kernel_size} x {kernel_size} window does not fit the "
                         f"{h} x {w} input")
    return kernel_size, stride, (h - kernel_size) // stride + 1, (w - kernel_size) // stride + 1


def max_pool2d_forward(x, kernel_size: int, stride: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Max pooling, and where each maximum was (as F.max_pool2d(..., return_indices=True)).

    Inputs:  x (N, C, H, W) float; kernel_size k; stride s (None: s = k).
    Returns: (y (N, C, H_out, W_out) of x's dtype,
              argmax (N, C, H_out, W_out) int64: the flat index a * W + b, into one H x W map,
              of the element each output copied; the first maximum in row-major order on ties).
    """
    x = _check_images(x)
    k, s, h_out, w_out = _window(x.shape, kernel_size, stride)
    n, c, _, w = x.shape
    # windows[n, c, i, j, u, v] = x[n, c, s i + u, s j + v] (a view), flattened over (u, v)
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s][:, :, :h_out, :w_out]
    windows = windows.reshape(n, c, h_out, w_out, k * k)
    local = windows.argmax(axis=-1)  # (N, C, H_out, W_out): u k + v of the first maximum
    y = np.take_along_axis(windows, local[..., None], axis=-1)[..., 0]
    u, v = np.divmod(local, k)
    rows = s * np.arange(h_out)[:, None] + u  # (N, C, H_out, W_out) by broadcasting
    cols = s * np.arange(w_out)[None, :] + v
    return y, (rows * w + cols).astype(np.int64)


def max_pool2d_backward(dy, argmax, x_shape) -> np.ndarray:
    """Route each dy[n, c, i, j] to the input element that was the window's maximum.

        dx[n, c].flat[argmax[n, c, i, j]] += dy[n, c, i, j]     (added: windows may overlap)

    Inputs:  dy (N, C, H_out, W_out) float; argmax from max_pool2d_forward; x_shape (N, C, H, W).
    Returns: dx (N, C, H, W), dy's float dtype; zero wherever no window took its maximum.
    """
    dy = _check_images(dy, "dy")
    argmax = np.asarray(argmax)
    if argmax.shape != dy.shape or argmax.dtype.kind not in "iu":
        raise ValueError(f"argmax must be an integer array of dy's shape {dy.shape}; got "
                         f"{argmax.dtype} {argmax.shape}")
    n, c, h, w = (int(v) for v in x_shape)
    if dy.shape[:2] != (n, c):
        raise ValueError(f"dy {dy.shape} does not match x_shape {tuple(x_shape)} in (N, C)")
    # One flat index per (n, c, i, j) into the whole N*C*H*W array; bincount adds repeats.
    offsets = (np.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
    dx = np.bincount((argmax + offsets).ravel(), weights=dy.ravel(), minlength=n * c * h * w)
    return dx.reshape(n, c, h, w).astype(dy.dtype, copy=False)


def avg_pool2d_forward(x, kernel_size: int, stride: int | None = None) -> np.ndarray:
    """Average pooling, as F.avg_pool2d without padding.

    Inputs:  x (N, C, H, W) float; kernel_size k; stride s (None: s = k).
    Returns: y (N, C, H_out, W_out), x's float dtype.
    """
    x = _check_images(x)
    k, s, h_out, w_out = _window(x.shape, kernel_size, stride)
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s][:, :, :h_out, :w_out]
    return windows.mean(axis=(-2, -1))


def avg_pool2d_backward(dy, x_shape, kernel_size: int, stride: int | None = None) -> np.ndarray:
    """Spread each dy[n, c, i, j] evenly, 1/k^2 each, over the k x k pixels of its window.

    Inputs:  dy (N, C, H_out, W_out) float; x_shape (N, C, H, W); kernel_size, stride as in
             the forward.
    Returns: dx (N, C, H, W), dy's float dtype.
    """
    dy = _check_images(dy, "dy")
    k, s, h_out, w_out = _window(tuple(int(v) for v in x_shape), kernel_size, stride)
    n, c, h, w = (int(v) for v in x_shape)
    if dy.shape != (n, c, h_out, w_out):
        raise ValueError(f"dy must have the output's shape {(n, c, h_out, w_out)}; got {dy.shape}")
    dx = np.zeros((n, c, h, w), dtype=dy.dtype)
    share = dy / (k * k)
    # one strided slice per window offset (u, v): overlapping windows add up
    for u in range(k):
        for v in range(k):
            dx[:, :, u:u + s * h_out:s, v:v + s * w_out:s] += share
    return dx
