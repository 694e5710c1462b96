"""Exercise 04 (starter): max and average pooling, forward and backward.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 03_CNN_LeNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

The task, the maths and hints are in ``03_CNN_LeNet/exercises/04_pooling_backward.md``.
Use NumPy only. Per example and channel, with a k x k window and stride s:

    max:  y[i, j] = max_(u,v) x[s i + u, s j + v]     dx: dy[i, j] goes to the window's argmax
    avg:  y[i, j] = mean_(u,v) x[s i + u, s j + v]    dx: dy[i, j] / k^2 to every window pixel
Overlapping windows (s < k) ADD their gradients. Ties: the first maximum in row-major order wins.
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
    raise NotImplementedError("max_pool2d_forward: "
                              "argmax over each flattened window, then to a flat index a W + b")


def max_pool2d_backward(dy, argmax, x_shape) -> np.ndarray:
    """Route each dy[n, c, i, j] to the input element that was the window's maximum.

        dx[n, c].flat[argmax[n, c, i, j]] += dy[n, c, i, j]     (added: windows may overlap)

    Inputs:  dy (N, C, H_out, W_out) float; argmax from max_pool2d_forward; x_shape (N, C, H, W).
    Returns: dx (N, C, H, W), dy's float dtype; zero wherever no window took its maximum.
    """
    raise NotImplementedError("max_pool2d_backward: "
                              "add dy at the argmax positions (np.add.at or np.bincount)")


def avg_pool2d_forward(x, kernel_size: int, stride: int | None = None) -> np.ndarray:
    """Average pooling, as F.avg_pool2d without padding.

    Inputs:  x (N, C, H, W) float; kernel_size k; stride s (None: s = k).
    Returns: y (N, C, H_out, W_out), x's float dtype.
    """
    raise NotImplementedError("avg_pool2d_forward: the mean of each window")


def avg_pool2d_backward(dy, x_shape, kernel_size: int, stride: int | None = None) -> np.ndarray:
    """Spread each dy[n, c, i, j] evenly, 1/k^2 each, over the k x k pixels of its window.

    Inputs:  dy (N, C, H_out, W_out) float; x_shape (N, C, H, W); kernel_size, stride as in
             the forward.
    Returns: dx (N, C, H, W), dy's float dtype.
    """
    raise NotImplementedError("avg_pool2d_backward: "
                              "add dy / k^2 to each window, one offset (u, v) at a time")
