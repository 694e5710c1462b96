"""Convolution and pooling layers from scratch in NumPy, with hand-written backward passes.

The two layers that make a network convolutional (LeCun et al. 1989; LeCun et al. 1998,
section II): a 2-D convolution, one small filter bank slid over the image with the same
weights at every position, and pooling (max or average over small windows). The
convolution is written twice: loop by loop as the equation (``conv2d_naive``, to read and
to test against) and as ONE matrix product of the filters with every window copied into a
column ("im2col", ``Conv2D``). Every class follows the L1 layer protocol (``forward``
caches, ``backward`` returns dL/dx and fills ``grads``), so lesson 02's ``Sequential`` and
optimisers use them unchanged. Notation, the backward pass derived and the notes on this
code: ``../theory.md`` (sections 1-4 and 9); LeNet-5 built from these layers:
``lenet_numpy.py``.
"""

from __future__ import annotations

import numpy as np

from utils import import_lesson

# W and b as attributes backed by params, the layer protocol of lesson 02
WeightsAndBias = import_lesson("02_MLP.numpy.mlp_numpy").WeightsAndBias

INITS = ("he", "xavier", "lecun", "torch", None)  # the initialisations Conv2D offers


# ---------------------------------------------------------------------------
# The naive convolution: the equation, loop by loop. For reading and testing only.
# ---------------------------------------------------------------------------


def conv2d_naive(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride=1, padding=0) -> np.ndarray:
    """Convolution by four nested loops, exactly the module docstring's sum.

        out[n, o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] * xp[n, c, s*i + u, s*j + v]

    Slow (N * C_out * H_out * W_out Python iterations): ``Conv2D`` computes the same
    numbers with one matrix product, and the tests check that they agree.

    Inputs:  x (N, C_in, H, W); W (C_out, C_in, kH, kW); b (C_out,);
             stride, padding - int or (rows, cols).
    Returns: out (N, C_out, H_out, W_out), in the dtype of x * W.
    """
    x, W, b = _check_images(x), np.asarray(W), np.asarray(b)
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding", minimum=0)
    n_images, _, height, width = x.shape
    c_out, _, kh, kw = W.shape
    h_out = conv_output_size(height, kh, sh, ph)
    w_out = conv_output_size(width, kw, sw, pw)
    xp = pad2d(x, (ph, pw))
    out = np.zeros((n_images, c_out, h_out, w_out), dtype=np.result_type(x, W))
    for n in range(n_images):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    window = xp[n, :, sh * i:sh * i + kh, sw * j:sw * j + kw]  # (C_in, kH, kW)
                    out[n, o, i, j] = np.sum(window * W[o]) + b[o]
    return out


def conv2d_backward_naive(dout: np.ndarray, x: np.ndarray, W: np.ndarray, stride=1,
                          padding=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass of ``conv2d_naive``, loop by loop (the docstring's three sums).

    Each output position (n, o, i, j) saw one window of xp through filter o, so its
    gradient dout[n, o, i, j] flows back to that window's pixels (times W[o]) and to
    W[o] (times the window), and to b[o] as it is.

    Inputs:  dout (N, C_out, H_out, W_out) - dL/dout; x, W, stride, padding - as in forward.
    Returns: (dx (N, C_in, H, W), dW (C_out, C_in, kH, kW), db (C_out,)).
    """
    x = _check_images(x)
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding", minimum=0)
    xp = pad2d(x, (ph, pw))
    dtype = np.result_type(x, W, dout)
    dxp, dW = np.zeros(xp.shape, dtype), np.zeros(W.shape, dtype)
    n_images, c_out, h_out, w_out = dout.shape
    kh, kw = W.shape[2:]
    for n in range(n_images):
        for o in range(c_out):
            for i in range(h_out):
                for j in range(w_out):
                    rows, cols = slice(sh * i, sh * i + kh), slice(sw * j, sw * j + kw)
                    dxp[n, :, rows, cols] += dout[n, o, i, j] * W[o]  # spread back over the window
                    dW[o] += dout[n, o, i, j] * xp[n, :, rows, cols]  # the window, weighted
    db = dout.sum(axis=(0, 2, 3))  # every position adds b[o] once
    dx = dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]]  # cut the padding off
    return dx, dW, db


# ---------------------------------------------------------------------------
# The convolution layer
# ---------------------------------------------------------------------------


class Conv2D(WeightsAndBias):
    """2-D convolution (cross-correlation) with a bias, vectorised by im2col.

    Computes out = conv(x, W) + b as in the module docstring, in the parameters' dtype.

    Inputs (constructor):
        in_channels, out_channels - C_in, C_out.
        kernel_size - k or (kH, kW); stride - s or (s_h, s_w); padding - p or (p_h, p_w),
                      zeros added on each side of both spatial axes.
        init - how W is drawn, with fan_in = C_in*kH*kW and fan_out = C_out*kH*kW (the
               same names and rules as lesson 02's Linear):
               "he"     N(0, 2 / fan_in)                          (He et al. 2015; for ReLU)
               "xavier" U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010; tanh)
               "lecun"  N(0, 1 / fan_in)                          (LeCun et al. 1998)
               "torch"  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W AND b: nn.Conv2d's default
               None     zeros: fill W yourself, e.g. with weights copied from another model.
               The bias starts at 0 except with "torch".
        rng - a np.random.Generator, an int seed, or None (a seed drawn from NumPy's global
              generator, so ``np.random.seed`` / ``seed_everything`` make it reproducible).
        dtype - np.float64 (default, for gradient checks) or np.float32 (faster training).

    Attributes: W (C_out, C_in, kH, kW), b (C_out,); params {"W", "b"} (the same arrays);
    grads {"W", "b"} (arrays of the same shapes, overwritten in place by each backward).
    """

    W_LAYOUT = "W is (C_out, C_in, kH, kW), as nn.Conv2d.weight"

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 *, init: str | None = "he", rng=None, dtype=np.float64):
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not (isinstance(value, (int, np.integer)) and value >= 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}: expected one of {INITS}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
        rng = _as_rng(rng)
        kh, kw = self.kernel_size
        shape = (self.out_channels, self.in_channels, kh, kw)
        fan_in, fan_out = self.in_channels * kh * kw, self.out_channels * kh * kw
        b = np.zeros(self.out_channels)
        if init == "he":
            W = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
        elif init == "lecun":
            W = rng.normal(0.0, np.sqrt(1.0 / fan_in), shape)
        elif init == "xavier":
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            W = rng.uniform(-bound, bound, shape)
        elif init == "torch":  # nn.Conv2d's kaiming_uniform(a=sqrt(5)) is U(+-1/sqrt(fan_in))
            bound = 1.0 / np.sqrt(fan_in)
            W = rng.uniform(-bound, bound, shape)
            b = rng.uniform(-bound, bound, self.out_channels)
        else:
            W = np.zeros(shape)
        self.params = {"W": W.astype(dtype), "b": b.astype(dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.cache: tuple | None = None


    def __repr__(self) -> str:
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size="
                f"{self.kernel_size}, stride={self.stride}, padding={self.padding})")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C_out, H_out, W_out) for an input of shape (N, C_in, H, W)."""
        n, _, h, w = input_shape
        return (n, self.out_channels,
                conv_output_size(h, self.kernel_size[0], self.stride[0], self.padding[0]),
                conv_output_size(w, self.kernel_size[1], self.stride[1], self.padding[1]))

    def forward(self, x: np.ndarray) -> np.ndarray:
        """out = W * x + b, by im2col and one matrix product; caches the columns for backward.

        Inputs:  x (N, C_in, H, W); cast to the parameters' dtype.
        Returns: out (N, C_out, H_out, W_out) (a transposed view of the product's result).
        """
        x = _check_images(x, channels=self.in_channels)
        W, b = self.params["W"], self.params["b"]
        x = x.astype(W.dtype, copy=False)
        n, c_out, h_out, w_out = self.output_shape(x.shape)
        xp = pad2d(x, self.padding)  # (N, C_in, Hp, Wp)
        cols = im2col(xp, self.kernel_size, self.stride)  # (K, M), K = C_in*kH*kW, M = N*Ho*Wo
        w_rows = W.reshape(c_out, -1)  # (C_out, K): one filter per row, order (c, u, v)
        out = w_rows @ cols + b[:, None]  # (C_out, K) @ (K, M) + (C_out, 1) -> (C_out, M)
        self.cache = (x.shape, xp.shape, cols)
        return out.reshape(c_out, n, h_out, w_out).transpose(1, 0, 2, 3)  # (N, C_out, Ho, Wo)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate dL/dout; fills grads["W"], grads["b"] and returns dL/dx.

        Inputs:  dout (N, C_out, H_out, W_out) - dL/dout for the last forward's input.
        Returns: dx (N, C_in, H, W), the parameters' dtype.
        """
        if self.cache is None:
            raise ValueError("backward needs the input of a forward pass: call forward(x) first")
        x_shape, xp_shape, cols = self.cache
        expected = self.output_shape(x_shape)
        dout = np.asarray(dout)
        if dout.shape != expected:
            raise ValueError(f"dout must have the forward output's shape {expected}; got "
                             f"{dout.shape}")
        W = self.params["W"]
        c_out = W.shape[0]
        dout_rows = dout.transpose(1, 0, 2, 3).reshape(c_out, -1)  # (C_out, M), (n, i, j) order
        dout_rows = dout_rows.astype(W.dtype, copy=False)
        self.grads["W"][...] = (dout_rows @ cols.T).reshape(W.shape)  # dL/dW = dout cols^T
        self.grads["b"][...] = dout_rows.sum(axis=1)  # dL/db = sum over (n, i, j)
        dcols = W.reshape(c_out, -1).T @ dout_rows  # dL/dcols = Wm^T dout   (K, M)
        dxp = col2im(dcols, xp_shape, self.kernel_size, self.stride)  # (N, C_in, Hp, Wp)
        ph, pw = self.padding
        return dxp[:, :, ph:ph + x_shape[2], pw:pw + x_shape[3]]  # cut the padding off


# ---------------------------------------------------------------------------
# im2col and col2im: the windows as the columns of one matrix, and back
# ---------------------------------------------------------------------------


def im2col(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Copy every kH x kW window of the (already padded) images into a column.

        cols[(c, u, v), (n, i, j)] = xp[n, c, s_h*i + u, s_w*j + v]

    Built by a loop over the kH*kW kernel offsets (u, v): for each one, the pixels that
    offset sees at every output position form a strided slice of xp, copied in one go.
    Rows are ordered (c, u, v), the order of ``W.reshape(C_out, -1)``; columns (n, i, j).

    Inputs:  xp (N, C, Hp, Wp); kernel (kH, kW); stride (s_h, s_w).
    Returns: cols (C*kH*kW, N*H_out*W_out), xp's dtype, a new contiguous array.
    """
    n_images, channels, hp, wp = xp.shape
    kh, kw = kernel
    h_out, w_out = conv_output_size(hp, kh, stride[0]), conv_output_size(wp, kw, stride[1])
    xc = xp.transpose(1, 0, 2, 3)  # (C, N, Hp, Wp): a view, so each slab lands in row order
    cols = np.empty((channels, kh, kw, n_images, h_out, w_out), dtype=xp.dtype)
    for u in range(kh):
        rows = _window_slice(u, stride[0], h_out)
        for v in range(kw):
            cols[:, u, v] = xc[:, :, rows, _window_slice(v, stride[1], w_out)]  # (C, N, Ho, Wo)
    return cols.reshape(channels * kh * kw, n_images * h_out * w_out)  # (K, M), no copy


def col2im(dcols: np.ndarray, xp_shape: tuple[int, ...], kernel: tuple[int, int],
           stride: tuple[int, int]) -> np.ndarray:
    """The adjoint of ``im2col``: add each column's entries back to the pixels they came from.

        dxp[n, c, s_h*i + u, s_w*j + v] += dcols[(c, u, v), (n, i, j)]    for all c, u, v, n, i, j

    A pixel covered by several windows (any stride smaller than the kernel) collects
    the sum of their contributions; that is why this is ``+=`` and not ``=``.

    Inputs:  dcols (C*kH*kW, N*H_out*W_out); xp_shape (N, C, Hp, Wp); kernel; stride.
    Returns: dxp (N, C, Hp, Wp), dcols's dtype.
    """
    n_images, channels, hp, wp = xp_shape
    kh, kw = kernel
    h_out, w_out = conv_output_size(hp, kh, stride[0]), conv_output_size(wp, kw, stride[1])
    dcols = dcols.reshape(channels, kh, kw, n_images, h_out, w_out)
    dxc = np.zeros((channels, n_images, hp, wp), dtype=dcols.dtype)  # (C, N, Hp, Wp)
    for u in range(kh):
        rows = _window_slice(u, stride[0], h_out)
        for v in range(kw):
            dxc[:, :, rows, _window_slice(v, stride[1], w_out)] += dcols[:, u, v]
    return dxc.transpose(1, 0, 2, 3)  # (N, C, Hp, Wp), a view


# ---------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------


class _Pool2D:
    """What max and average pooling share: window geometry, input checks, the cache."""

    pad_value = 0.0

    def __init__(self, kernel_size, stride=None, padding=0):
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride")
        self.padding = _pair(padding, "padding", minimum=0)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            # the same rule as PyTorch: otherwise a window could hold only padding
            raise ValueError(f"padding {self.padding} must be at most half the kernel "
                             f"{self.kernel_size}")
        self.params: dict[str, np.ndarray] = {}  # pooling has nothing to learn
        self.grads: dict[str, np.ndarray] = {}
        self.cache: tuple | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding})")

    def _prepare(self, x) -> tuple[np.ndarray, int, int]:
        """Check x (N, C, H, W), pad it, and return (xp, H_out, W_out)."""
        x = _check_images(x)
        h_out = conv_output_size(x.shape[2], self.kernel_size[0], self.stride[0], self.padding[0])
        w_out = conv_output_size(x.shape[3], self.kernel_size[1], self.stride[1], self.padding[1])
        return pad2d(x, self.padding, self.pad_value), h_out, w_out

    def _offsets(self, h_out: int, w_out: int):
        """Yield (k, rows, cols) for each kernel offset (u, v), k = u*kW + v in row-major order."""
        kh, kw = self.kernel_size
        for u in range(kh):
            for v in range(kw):
                yield (u * kw + v, _window_slice(u, self.stride[0], h_out),
                       _window_slice(v, self.stride[1], w_out))

    def _check_dout(self, dout) -> np.ndarray:
        if self.cache is None:
            raise ValueError("backward needs the input of a forward pass: call forward(x) first")
        dout = np.asarray(dout)
        if dout.shape != self.cache[0]:
            raise ValueError(f"dout must have the forward output's shape {self.cache[0]}; got "
                             f"{dout.shape}")
        return dout

    def _unpad(self, dxp: np.ndarray) -> np.ndarray:
        ph, pw = self.padding
        return dxp[:, :, ph:dxp.shape[2] - ph, pw:dxp.shape[3] - pw]


class MaxPool2D(_Pool2D):
    """Max pooling: each output is the largest element of its k x k window.

        out[n, c, i, j] = max_{u, v} xp[n, c, s*i + u, s*j + v]
        dL/dxp[n, c, s*i + u*, s*j + v*] += dout[n, c, i, j]   at the window's argmax (u*, v*)

    Ties: the first maximum in row-major order wins (as PyTorch); a NaN propagates.

    Inputs (constructor): kernel_size - k or (kH, kW); stride - default kernel_size;
    padding - -inf added on each side, at most half the kernel.
    """

    pad_value = -np.inf

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, C, H, W). Returns: (N, C, H_out, W_out), x's dtype."""
        xp, h_out, w_out = self._prepare(x)
        n_offsets = self.kernel_size[0] * self.kernel_size[1]
        best = argbest = None
        # Scan the kH*kW offsets in row-major order (k = 0, 1, ...), keeping a running max
        # and the offset it came from. A later element takes over only if STRICTLY larger,
        # so ties keep the first: PyTorch's rule, which the backward pass must follow.
        for k, rows, cols in self._offsets(h_out, w_out):
            candidate = xp[:, :, rows, cols]  # (N, C, Ho, Wo): offset k of every window
            if best is None:
                best = candidate.copy()
                argbest = np.zeros(best.shape, dtype=np.min_scalar_type(n_offsets - 1))
                continue
            better = candidate > best  # (N, C, Ho, Wo) bool
            # argbest = k where better, else unchanged. Since k grows during the scan, that
            # is max(argbest, k * better): arithmetic, much faster than masked assignment.
            np.maximum(argbest, better * argbest.dtype.type(k), out=argbest)
            np.maximum(best, candidate, out=best)  # np.maximum propagates NaN, like PyTorch
        self.cache = (best.shape, xp.shape, argbest)
        return best

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Inputs: dout (N, C, H_out, W_out). Returns: dx (N, C, H, W), dout's dtype."""
        dout = self._check_dout(dout)
        _, xp_shape, argbest = self.cache
        dxp = np.zeros(xp_shape, dtype=dout.dtype)
        for k, rows, cols in self._offsets(*argbest.shape[2:]):
            # only the window's argmax receives the gradient; += because with stride < k
            # one pixel may be the maximum of several windows
            dxp[:, :, rows, cols] += dout * (argbest == k)
        return self._unpad(dxp)


class AvgPool2D(_Pool2D):
    """Average pooling: each output is the mean of its k x k window.

        out[n, c, i, j] = 1/(kH*kW) sum_{u, v} xp[n, c, s*i + u, s*j + v]
        dL/dxp[n, c, s*i + u, s*j + v] += dout[n, c, i, j] / (kH*kW)      for every (u, v)

    Padding is zeros and counts in the mean (PyTorch's default count_include_pad=True).

    Inputs (constructor): kernel_size - k or (kH, kW); stride - default kernel_size;
    padding - zeros added on each side, at most half the kernel.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, C, H, W). Returns: (N, C, H_out, W_out), x's dtype."""
        xp, h_out, w_out = self._prepare(x)
        total = np.zeros(xp.shape[:2] + (h_out, w_out), dtype=xp.dtype)
        for _, rows, cols in self._offsets(h_out, w_out):
            total += xp[:, :, rows, cols]  # add offset (u, v) of every window
        self.cache = (total.shape, xp.shape)
        return total / np.asarray(self.kernel_size[0] * self.kernel_size[1], dtype=xp.dtype)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Inputs: dout (N, C, H_out, W_out). Returns: dx (N, C, H, W), dout's dtype."""
        dout = self._check_dout(dout)
        _, xp_shape = self.cache
        share = dout / np.asarray(self.kernel_size[0] * self.kernel_size[1], dtype=dout.dtype)
        dxp = np.zeros(xp_shape, dtype=dout.dtype)
        for _, rows, cols in self._offsets(*dout.shape[2:]):
            dxp[:, :, rows, cols] += share  # every element of the window gets an equal share
        return self._unpad(dxp)


# ---------------------------------------------------------------------------
# Flatten: from feature maps to the vectors a dense layer takes
# ---------------------------------------------------------------------------


class Flatten:
    """(N, C, H, W) -> (N, C*H*W), in C-order (channel, then row, then column), like torch.

    The backward pass only undoes the reshape: no number changes.
    """

    def __init__(self):
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.input_shape: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        return "Flatten()"

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Inputs: x (N, ...) with at least 2 axes. Returns: (N, prod of the other axes)."""
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError(f"Flatten expects a batch (N, ...) with at least 2 axes; got shape "
                             f"{x.shape}")
        self.input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Inputs: dout (N, D). Returns: dout reshaped to the forward input's shape."""
        if self.input_shape is None:
            raise ValueError("backward needs the input of a forward pass: call forward(x) first")
        dout = np.asarray(dout)
        n, rest = self.input_shape[0], int(np.prod(self.input_shape[1:]))
        if dout.shape != (n, rest):
            raise ValueError(f"dout must have shape {(n, rest)}; got {dout.shape}")
        return dout.reshape(self.input_shape)


# ---------------------------------------------------------------------------
# Sizes, padding and the input checks the layers share: a wrong shape fails at the
# layer's door, with the shape expected
# ---------------------------------------------------------------------------


def _pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints, each >= minimum -> (rows, cols); e.g. kernel_size=5 -> (5, 5).

    Inputs:  value - int or (int, int); name - the argument's name for the message;
             minimum - 1 for kernel sizes and strides, 0 for padding.
    Returns: a tuple of two Python ints.
    """
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, each >= {minimum}; got "
                         f"{value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Number of window positions along one axis: floor((size + 2 padding - kernel) / stride) + 1.

    Inputs:  size - H or W of the input; kernel, stride, padding - along the same axis.
    Returns: H_out or W_out as an int; raises ValueError if not even one window fits.
    """
    padded = size + 2 * padding
    if padded < kernel:
        raise ValueError(f"the window ({kernel}) is larger than the padded input ({size} + 2*"
                         f"{padding} = {padded}): use a smaller kernel or more padding")
    return (padded - kernel) // stride + 1


def _as_rng(rng) -> np.random.Generator:
    """A Generator from a Generator, an int seed, or None (seeded from NumPy's global generator).

    Inputs:  rng - np.random.Generator, int, or None.
    Returns: np.random.Generator.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng(np.random.randint(0, 2**31 - 1))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy Generator, an int seed or None; got {type(rng)}")


def _check_images(x, name: str = "x", channels: int | None = None) -> np.ndarray:
    """Return x as an ndarray of shape (N, C, H, W), or raise ValueError saying what was expected.

    Inputs:  x - array-like (N, C, H, W); channels - the C the layer expects (None: any).
    Returns: the ndarray (floats kept as they are, integers and booleans as float64).
    """
    x = np.asarray(x)
    if x.ndim != 4:
        hint = ""
        if x.ndim == 3:
            hint = " (one image? add the batch axis: x[None]; grey images? add the channel " \
                   "axis: x[:, None])"
        elif x.ndim == 2:
            hint = " (flattened images? reshape to (N, C, H, W), e.g. x.reshape(-1, 1, 28, 28))"
        raise ValueError(f"{name} must be a batch of images of shape (N, C, H, W); got shape "
                         f"{x.shape}{hint}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{name} has {x.shape[1]} channels (shape {x.shape}) but the layer "
                         f"expects {channels}: shape (N, {channels}, H, W), channels first")
    if x.dtype.kind in "biu":
        x = x.astype(np.float64)
    elif x.dtype.kind != "f":
        raise ValueError(f"{name} must hold real numbers; got dtype {x.dtype}")
    return x


def pad2d(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of a batch of images with a constant.

    Inputs:  x (N, C, H, W); padding (pH, pW) added on both sides; value - the fill.
    Returns: (N, C, H + 2 pH, W + 2 pW), x's dtype; x itself when there is no padding.
    """
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _window_slice(offset: int, stride: int, count: int) -> slice:
    """The rows (or columns) kernel offset ``offset`` touches: offset, offset + s, ... (count)."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)
