"""LeNet-5 in low-level PyTorch: convolution by unfold + matmul, pooling by unfold (Level 2).

What this file builds
---------------------
A 2-D convolution layer (cross-correlation, as in every deep-learning library)::

    out[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * x_pad[n, c, i*s_h + p, j*s_w + q]

    x (N, C, H, W), W (C_out, C, kH, kW), b (C_out,), out (N, C_out, H_out, W_out)
    H_out = floor((H + 2 pad_h - kH) / s_h) + 1      (the same for W_out)

pooling layers (a window of k x k values becomes one number)::

    max_pool: out[n, c, i, j] = max_{p, q}  x_pad[n, c, i*s + p, j*s + q]    (padding: -inf)
    avg_pool: out[n, c, i, j] = 1/(k*k) sum_{p, q} x_pad[n, c, i*s + p, j*s + q]  (padding: 0)

and from them the LeNet-5 of the lesson in its common modern form (the same network
as the NumPy level, L1)::

    x (N, 1, 32, 32) -conv 5x5-> (N, 6, 28, 28) -act-> -pool 2-> (N, 6, 14, 14)
      -conv 5x5-> (N, 16, 10, 10) -act-> -pool 2-> (N, 16, 5, 5) -flatten-> (N, 400)
      -linear-> 120 -act-> -linear-> 84 -act-> -linear-> 10 logits

with act = ReLU and max pooling by default (tanh and average pooling on request).
The paper's own LeNet-5 (scaled tanh, trainable subsampling, the partial C3
connection table, RBF outputs) is the Level 3 file ``paper/lenet_paper.py``.

How: im2col, "image to columns"
-------------------------------
A convolution is a matrix multiplication once every receptive field is laid out as
a column. ``Tensor.unfold(dim, size, step)`` returns a *view* holding every window of
``size`` consecutive entries along ``dim``, ``step`` apart; unfolding H and then W
gives every kH x kW patch without copying::

    x.unfold(2, kH, s_h).unfold(3, kW, s_w)      # (N, C, H_out, W_out, kH, kW), a view

Reordering to (N, C*kH*kW, H_out*W_out) copies the patches into the "column"
matrix (the copy costs kH*kW times the input's memory: the price of one big matmul
instead of many small loops), and then::

    out = W.reshape(C_out, C*kH*kW) @ cols  + b      # (N, C_out, H_out*W_out)

``torch.nn.functional.unfold`` (a.k.a. ``F.unfold``, the library's im2col) gives
the same (N, C*kH*kW, L) matrix in one call; we build it from ``Tensor.unfold`` so
that every step is visible, and the tests check ours against ``F.unfold``. Pooling
unfolds the same way and reduces each window with ``max`` or ``mean``.

Why this level
--------------
Autograd differentiates unfold (its backward scatters-adds each patch's gradient
back to the pixels it came from: "col2im"), matmul and max, so the backward pass
comes for free. What must be right is the forward arithmetic: padding, strides,
the patch order of the reshape, and the tie rule of max pooling. ``max(dim)``
returns the FIRST maximum, so the gradient of a window goes to exactly the element
that ``F.max_pool2d`` passes it to when values tie (frequent after a ReLU: windows of
zeros); ``amax`` would instead split the gradient among the tied entries.

The loss (softmax cross-entropy from logits, with ``logsumexp``) and the optimiser
steps (SGD with momentum, and Adam) are written out too, with the update rules of
``torch.optim.SGD`` / ``torch.optim.Adam``. No ``torch.nn`` layers, no ``F.conv2d`` /
``F.*pool*`` / ``F.cross_entropy``, no ``torch.optim`` (a test checks it).

Data: the default is scikit-learn's 8x8 digits, enlarged to the paper's 32x32 input
field by nearest-neighbour upsampling x3 (24x24: each pixel becomes a 3x3 block)
and 4 pixels of background on every side, the way MNIST's 28x28 digits sit in the
middle of LeNet's 32x32 field (2 pixels of border). Pixel values p in [0, 1] are
mapped as in the paper (Section II-B), background to -0.1 and ink to 1.175:
x = -0.1 + 1.275 p.

Run it from the repository root::

    python 03_CNN_LeNet/pytorch_lowlevel/lenet_lowlevel.py                  # digits
    python -m 03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel --dataset mnist --data-root DIR
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from utils.cli import (
    add_common_args,
    data_errors,
    non_negative_float,
    non_negative_int,
    parse_args,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import (
    plot_confusion_matrix,
    plot_curves,
    plot_feature_maps,
    plot_image_grid,
    plot_weights,
)

ACTIVATIONS = ("relu", "tanh")
POOLS = ("max", "avg")
OPTIMIZERS = ("adam", "sgd")
EVAL_BATCH = 500  # images per forward pass when predicting (bounds im2col's memory)


# --------------------------------------------------------------------------------------
# 1. Argument checks
# --------------------------------------------------------------------------------------


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each >= minimum, as a tuple."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                                 for v in pair):
        raise ValueError(f"{name}: expected an int or a pair of ints (height, width), "
                         f"got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_images(x, name: str = "x") -> torch.Tensor:
    """x must be a floating-point tensor of shape (N, C, H, W)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, C, H, W), "
                        f"got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (one image? add the batch axis: x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name}: expected a 4-D tensor (N, C, H, W), got shape "
                         f"{tuple(x.shape)}{hint}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float tensor, got {x.dtype}; "
                         "convert with x.float() or x.double()")
    return x


# --------------------------------------------------------------------------------------
# 2. Patches, im2col and the convolution
# --------------------------------------------------------------------------------------


def extract_patches(x: torch.Tensor, kernel_size, stride=1, padding=0,
                    pad_value: float = 0.0) -> torch.Tensor:
    """Every kH x kW window of x, as a strided view (no copy unless padding is needed).

    Inputs:  x (N, C, H, W) float; kernel_size, stride (>= 1), padding (>= 0): int or
             (h, w); pad_value - what the border holds (0 for convolution, -inf for max)
    Returns: (N, C, H_out, W_out, kH, kW), patches[n, c, i, j] = the window whose top-left
             corner is x_pad[n, c, i*s_h, j*s_w];  H_out = (H + 2 pad_h - kH) // s_h + 1
    """
    x = _check_images(x)
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if ph or pw:
        # F.pad takes (left, right, top, bottom) for the last two axes
        x = F.pad(x, (pw, pw, ph, ph), value=pad_value)  # (N, C, H + 2ph, W + 2pw)
    if x.shape[2] < kh or x.shape[3] < kw:
        raise ValueError(f"kernel {kh}x{kw} is larger than the (padded) input "
                         f"{x.shape[2]}x{x.shape[3]}; use a smaller kernel or more padding")
    # unfold(dim, size, step): the dim becomes the number of windows, a new last axis
    # of length `size` walks through each window.
    return x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, H_out, W_out, kH, kW)


def im2col(x: torch.Tensor, kernel_size, stride=1, padding=0) -> torch.Tensor:
    """The patch matrix of a convolution, in the layout of ``F.unfold``.

    Inputs:  x (N, C, H, W); kernel_size, stride, padding as in ``extract_patches``
    Returns: cols (N, C*kH*kW, L), L = H_out * W_out; row c*kH*kW + p*kW + q of column
             i*W_out + j holds x_pad[n, c, i*s_h + p, j*s_w + q]
    """
    patches = extract_patches(x, kernel_size, stride, padding)  # (N, C, Ho, Wo, kH, kW)
    n, c, h_out, w_out, kh, kw = patches.shape
    # (N, C, kH, kW, Ho, Wo) -> (N, C*kH*kW, Ho*Wo): this reshape copies (im2col proper)
    return patches.permute(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, h_out * w_out)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride=1, padding=0) -> torch.Tensor:
    """2-D convolution (cross-correlation) by im2col and one matrix multiplication.

        out[n, o, i, j] = b[o] + sum_{c,p,q} W[o, c, p, q] x_pad[n, c, i s_h + p, j s_w + q]

    Inputs:  x (N, C, H, W); weight (C_out, C, kH, kW); bias (C_out,) or None;
             stride (>= 1), padding (>= 0): int or (h, w). Same dtype and device for all.
    Returns: (N, C_out, H_out, W_out), H_out = (H + 2 pad_h - kH) // s_h + 1
    """
    x = _check_images(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError("conv2d: weight must be a 4-D tensor (C_out, C_in, kH, kW), got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight!r}")
    c_out, c_in, kh, kw = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels but the weight expects {c_in} "
                         f"(weight shape {tuple(weight.shape)} = (C_out, C_in, kH, kW))")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"conv2d: bias must have shape ({c_out},), got {tuple(bias.shape)}")
    if x.dtype != weight.dtype:
        raise ValueError(f"conv2d: x is {x.dtype} but the weight is {weight.dtype}; "
                         "convert one of them")
    n = x.shape[0]
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    h_out = (x.shape[2] + 2 * ph - kh) // sh + 1
    w_out = (x.shape[3] + 2 * pw - kw) // sw + 1
    cols = im2col(x, (kh, kw), (sh, sw), (ph, pw))  # (N, C*kH*kW, L)
    # (C_out, CKK) @ (N, CKK, L) -> (N, C_out, L): the weight matrix is shared by the batch
    out = weight.reshape(c_out, c_in * kh * kw) @ cols
    if bias is not None:
        out = out + bias[:, None]  # (C_out, 1) broadcasts over the L positions
    return out.reshape(n, c_out, h_out, w_out)


# --------------------------------------------------------------------------------------
# 3. Pooling by unfold
# --------------------------------------------------------------------------------------


def _pool_windows(x: torch.Tensor, kernel_size, stride, padding, pad_value: float):
    """(N, C, H_out, W_out, kH, kW): every pooling window, a strided view of (padded) x."""
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(kernel_size if stride is None else stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if ph > kh // 2 or pw > kw // 2:
        # the same rule as torch: a window must never lie entirely in the padding
        raise ValueError(f"pooling: padding {padding!r} must be at most half the kernel "
                         f"size {kernel_size!r}")
    return extract_patches(x, (kh, kw), (sh, sw), (ph, pw), pad_value)


def max_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """Max pooling: the largest value of each window (padding counts as -inf).

    Inputs:  x (N, C, H, W) float; kernel_size int or (h, w); stride default = kernel_size;
             padding <= kernel_size // 2
    Returns: (N, C, H_out, W_out), H_out = (H + 2 pad - k) // s + 1 (floor, like torch)

    The maximum is taken in two steps, along each window's rows and then across them,
    straight on the strided view (no copy of the windows). ``max(dim)`` returns the FIRST
    maximal index, so step one picks the first maximum of every row and step two the
    first row holding the overall maximum: together the first maximum in row-major
    order, the element ``F.max_pool2d`` sends the gradient to when values tie.
    """
    x = _check_images(x)
    windows = _pool_windows(x, kernel_size, stride, padding, pad_value=-math.inf)
    row_max = windows.max(dim=-1).values  # (N, C, Ho, Wo, kH): max of each window row
    return row_max.max(dim=-1).values  # (N, C, Ho, Wo)


def avg_pool2d(x: torch.Tensor, kernel_size, stride=None, padding=0) -> torch.Tensor:
    """Average pooling: the mean of each window, padding counted as zeros in the k*k
    divisor (torch's default ``count_include_pad=True``).

    Inputs and Returns: as in ``max_pool2d``
    """
    x = _check_images(x)
    windows = _pool_windows(x, kernel_size, stride, padding, pad_value=0.0)
    return windows.mean(dim=(-2, -1))  # (N, C, Ho, Wo)


# --------------------------------------------------------------------------------------
# 4. Activations, the linear layer and the loss
# --------------------------------------------------------------------------------------


def activation_fn(name: str):
    """The activation function called ``name``: "relu" -> max(0, a), "tanh" -> tanh(a)."""
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Affine map Z = X W + b (the layout of lessons 01 and 02: W is (D_in, D_out)).

    Inputs: x (N, D_in), W (D_in, D_out), b (D_out,);  Returns: (N, D_out)
    """
    return x @ W + b


def softmax_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of a softmax over K classes, computed from logits.

        J = 1/N sum_i [ logsumexp_k(Z_ik) - Z_i[y_i] ]     (= -1/N sum_i log softmax(Z_i)[y_i])

    Inputs:  logits (N, K) float; y (N,) int64 labels in 0..K-1
    Returns: scalar tensor; autograd gives dJ/dZ = (softmax(Z) - onehot(y)) / N
    """
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: expected logits (N, K) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(y.shape)}")
    log_normaliser = torch.logsumexp(logits, dim=1)  # (N,), max subtracted inside: no overflow
    true_class_logit = logits.gather(1, y[:, None])[:, 0]  # (N,) Z_i[y_i]
    return (log_normaliser - true_class_logit).mean()


# --------------------------------------------------------------------------------------
# 5. LeNet-5 with its parameters as plain tensors
# --------------------------------------------------------------------------------------


class LeNet5:
    """LeNet-5 in its modern form, parameters held as plain tensors in ``params``.

    conv1 (6 @ 5x5) -> act -> pool 2 -> conv2 (16 @ 5x5) -> act -> pool 2 -> flatten
    -> fc1 (120) -> act -> fc2 (84) -> act -> fc3 (num_classes logits)

    Inputs (constructor):
        in_channels, num_classes - C of the input images and K of the output
        input_size  - H = W of the input images (32 for LeNet's field)
        padding     - zero padding of conv1 (2 lets 28x28 images keep LeNet's geometry)
        activation  - "relu" (default) or "tanh";  pool - "max" (default) or "avg"
        seed        - the parameters are drawn from a torch.Generator seeded with it
        dtype, device
    Parameters (``params``, name -> leaf tensor with requires_grad):
        conv1.W (6, C, 5, 5), conv1.b (6,), conv2.W (16, 6, 5, 5), conv2.b (16,),
        fc1.W (16*s*s, 120), fc1.b (120,), fc2.W (120, 84), fc2.b (84,),
        fc3.W (84, K), fc3.b (K,), with s = 5 for a 32x32 input. Linear weights are
        (D_in, D_out) as at L1 (``x @ W``), i.e. nn.Linear.weight transposed.
    Initialisation: W ~ N(0, gain / fan_in) with gain 2 for ReLU (He et al. 2015) and 1 for
    tanh (LeCun 1998), b = 0. Drawn in float64 on the CPU, then cast: the same seed gives
    the same network in every dtype and on every device.
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, input_size: int = 32,
                 padding: int = 0, activation: str = "relu", pool: str = "max", seed: int = 0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        for name, value, low in (("in_channels", in_channels, 1), ("num_classes", num_classes, 2),
                                 ("padding", padding, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.input_size, self.padding = input_size, padding
        self.activation, self.pool = activation, pool
        self.flat_size = self._flat_size(input_size, padding)  # side of conv2's pooled maps
        self.params = self._init_params(seed, dtype, torch.device(device))

    @staticmethod
    def _flat_size(input_size, padding: int) -> int:
        """Side length s of the (16, s, s) maps that are flattened: 5 for a 32x32 input."""
        if not isinstance(input_size, int) or input_size < 1:
            raise ValueError(f"input_size must be a positive integer, got {input_size!r}")
        side = input_size + 2 * padding - 4  # conv1: 5x5, stride 1
        side = side // 2 - 4  # pool 2, then conv2: 5x5
        side = side // 2  # pool 2
        if side < 1:
            raise ValueError(f"input_size {input_size} (padding {padding}) is too small for "
                             "LeNet-5: the maps vanish before the fully connected layers; "
                             "LeNet expects 32x32 (or 28x28 with padding=2)")
        return side

    def _init_params(self, seed: int, dtype, device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        gain = 2.0 if self.activation == "relu" else 1.0
        shapes = {
            "conv1": ((6, self.in_channels, 5, 5), self.in_channels * 25),
            "conv2": ((16, 6, 5, 5), 6 * 25),
            "fc1": ((16 * self.flat_size ** 2, 120), 16 * self.flat_size ** 2),
            "fc2": ((120, 84), 120),
            "fc3": ((84, self.num_classes), 84),
        }
        params = {}
        for layer, (shape, fan_in) in shapes.items():
            W = torch.randn(shape, generator=generator, dtype=torch.float64)
            W = W * math.sqrt(gain / fan_in)
            b = torch.zeros(shape[0] if layer.startswith("conv") else shape[1],
                            dtype=torch.float64)
            params[f"{layer}.W"] = W.to(dtype=dtype, device=device).requires_grad_(True)
            params[f"{layer}.b"] = b.to(dtype=dtype, device=device).requires_grad_(True)
        return params

    # -- parameters ------------------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        """The parameter tensors, in a fixed order (for the optimiser steps)."""
        return list(self.params.values())

    def num_parameters(self) -> int:
        """Number of trainable numbers: 61,706 for 1 channel, 32x32 input and 10 classes."""
        return sum(p.numel() for p in self.params.values())

    def set_params(self, values: dict) -> None:
        """Replace parameters by copies of ``values`` (name -> array-like of the same shape)."""
        for name, value in values.items():
            if name not in self.params:
                raise KeyError(f"unknown parameter {name!r}; expected one of {list(self.params)}")
            old = self.params[name]
            new = torch.as_tensor(value).detach().to(dtype=old.dtype, device=old.device)
            if new.shape != old.shape:
                raise ValueError(f"{name}: expected shape {tuple(old.shape)}, got "
                                 f"{tuple(new.shape)}")
            self.params[name] = new.clone().requires_grad_(True)

    def to(self, dtype: torch.dtype | None = None, device=None) -> LeNet5:
        """Move / cast every parameter (new leaf tensors); returns self."""
        for name, p in self.params.items():
            self.params[name] = p.detach().to(dtype=dtype or p.dtype,
                                              device=device or p.device).requires_grad_(True)
        return self

    # -- the forward pass ---------------------------------------------------------------
    def forward(self, x: torch.Tensor, *, return_features: bool = False):
        """Logits of the network.

        Inputs:  x (N, C, H, W) float with H = W = input_size, the parameters' dtype
        Returns: logits (N, K); with return_features=True also a dict of the
                 intermediate maps after each activation / pooling:
                 "c1" (N, 6, 28, 28), "s2" (N, 6, 14, 14), "c3" (N, 16, 10, 10),
                 "s4" (N, 16, 5, 5), "f5" (N, 120), "f6" (N, 84) for a 32x32 input
        """
        x = _check_images(x)
        p = self.params
        expected = (self.in_channels, self.input_size, self.input_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"LeNet5: expected images of shape (N, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got {tuple(x.shape)}")
        if x.dtype != p["conv1.W"].dtype:
            raise ValueError(f"LeNet5: x is {x.dtype} but the parameters are "
                             f"{p['conv1.W'].dtype}; use x.to(model.params['conv1.W'].dtype)")
        act = activation_fn(self.activation)
        pool = max_pool2d if self.pool == "max" else avg_pool2d
        c1 = act(conv2d(x, p["conv1.W"], p["conv1.b"], padding=self.padding))  # (N, 6, 28, 28)
        s2 = pool(c1, 2)  # (N, 6, 14, 14)
        c3 = act(conv2d(s2, p["conv2.W"], p["conv2.b"]))  # (N, 16, 10, 10)
        s4 = pool(c3, 2)  # (N, 16, 5, 5)
        flat = s4.reshape(s4.shape[0], -1)  # (N, 400), channel-major like nn.Flatten
        f5 = act(linear(flat, p["fc1.W"], p["fc1.b"]))  # (N, 120)
        f6 = act(linear(f5, p["fc2.W"], p["fc2.b"]))  # (N, 84)
        logits = linear(f6, p["fc3.W"], p["fc3.b"])  # (N, K)
        if return_features:
            return logits, {"c1": c1, "s2": s2, "c3": c3, "s4": s4, "f5": f5, "f6": f6}
        return logits

    __call__ = forward

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean softmax cross-entropy on (x, y) as a differentiable scalar tensor."""
        return softmax_cross_entropy(self.forward(x), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> torch.Tensor:
        """Most probable class of each image, int64 (N,), computed in batches."""
        out = [self.forward(x[i:i + batch_size]).argmax(dim=1)
               for i in range(0, x.shape[0], batch_size)]
        return torch.cat(out)

    def score(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Accuracy: fraction of images whose predicted class equals y."""
        return float((self.predict(x) == y.to(self.params["conv1.W"].device)).double().mean())


# --------------------------------------------------------------------------------------
# 6. The optimisers, written by hand (update rules of torch.optim.SGD and torch.optim.Adam)
# --------------------------------------------------------------------------------------


def zero_grad(params: Sequence[torch.Tensor]) -> None:
    """Forget the previous step's gradients (autograd ADDS into ``p.grad``)."""
    for p in params:
        p.grad = None


@torch.no_grad()  # the update must not be recorded in the autograd graph
def sgd_step(params: Sequence[torch.Tensor], lr: float, momentum: float = 0.0,
             weight_decay: float = 0.0, state: dict | None = None) -> dict:
    """One step of SGD with the rule of ``torch.optim.SGD`` (dampening 0, no Nesterov).

        g <- p.grad + weight_decay * p
        v <- g (first step),  v <- momentum * v + g (later steps)      (if momentum > 0)
        p <- p - lr * v                                                  (v = g if momentum = 0)

    Inputs:  params - tensors whose .grad backward filled (None grads are skipped);
             lr > 0; momentum in [0, 1); weight_decay >= 0;
             state - the dict the previous call returned (momentum buffers), or None
    Returns: the state dict for the next call; the parameters are updated in place
    """
    if not lr > 0:
        raise ValueError(f"sgd_step: lr must be > 0, got {lr!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"sgd_step: momentum must be in [0, 1), got {momentum!r}")
    if weight_decay < 0:
        raise ValueError(f"sgd_step: weight_decay must be >= 0, got {weight_decay!r}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad
        if weight_decay != 0:
            g = g + weight_decay * p
        if momentum != 0:
            velocity = state.get(i)
            if velocity is None:
                velocity = g.clone()
            else:
                velocity.mul_(momentum).add_(g)
            state[i] = velocity
            g = velocity
        p.sub_(lr * g)
    return state


@torch.no_grad()
def adam_step(params: Sequence[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0, state: dict | None = None) -> dict:
    """One step of Adam (Kingma & Ba 2015, Algorithm 1) as ``torch.optim.Adam`` computes it.

        g <- p.grad + weight_decay * p                  (L2 penalty added to the gradient)
        m <- beta1 m + (1 - beta1) g                     first moment, m_0 = 0
        v <- beta2 v + (1 - beta2) g^2                   second moment, v_0 = 0
        p <- p - lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)

    The last line is the paper's p - lr m_hat / (sqrt(v_hat) + eps) with the bias
    corrections m_hat = m / (1 - beta1^t), v_hat = v / (1 - beta2^t), arranged as
    torch arranges it (eps is added after un-biasing sqrt(v)).

    Inputs:  params - tensors with .grad; lr > 0; betas in [0, 1); eps > 0; weight_decay >= 0;
             state - what the previous call returned ({"t": steps, i: (m, v)}), or None
    Returns: the state dict for the next call; the parameters are updated in place
    """
    beta1, beta2 = betas
    if not lr > 0:
        raise ValueError(f"adam_step: lr must be > 0, got {lr!r}")
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"adam_step: betas must be in [0, 1), got {betas!r}")
    if not eps > 0 or weight_decay < 0:
        raise ValueError(f"adam_step: need eps > 0 and weight_decay >= 0, got {eps!r}, "
                         f"{weight_decay!r}")
    state = {"t": 0} if state is None else state
    state["t"] += 1
    t = state["t"]
    bias_correction1 = 1 - beta1 ** t
    bias_correction2 = 1 - beta2 ** t
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad
        if weight_decay != 0:
            g = g + weight_decay * p
        if i not in state:
            state[i] = (torch.zeros_like(p), torch.zeros_like(p))
        m, v = state[i]
        m.mul_(beta1).add_(g, alpha=1 - beta1)  # m = beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
        denominator = v.sqrt() / math.sqrt(bias_correction2) + eps
        p.sub_((lr / bias_correction1) * m / denominator)
    return state


# --------------------------------------------------------------------------------------
# 7. The training loop
# --------------------------------------------------------------------------------------


def _check_labels(y, n: int, num_classes: int) -> torch.Tensor:
    """(N,) integer labels in 0..K-1 as an int64 tensor."""
    t = torch.as_tensor(y)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"y: expected {n} labels of shape ({n},), got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex():
        raise ValueError(f"y: expected integer class labels, got {t.dtype}")
    if n and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"y: labels must be 0..{num_classes - 1}, got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t.to(torch.int64)


def train(model: LeNet5, X: torch.Tensor, y, *, epochs: int, batch_size: int, lr: float,
          optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
          seed: int = 0, X_val: torch.Tensor | None = None, y_val=None,
          progress: bool = False, log=None) -> dict[str, list[float]]:
    """Mini-batch training: zero_grad -> forward -> loss -> backward -> step, per batch.

    Inputs:  model; X (N, C, H, W) float in the model's dtype; y (N,) int labels;
             optimizer "adam" (betas 0.9, 0.999) or "sgd" (with ``momentum``);
             seed - order of the mini-batches (a torch.Generator of its own);
             X_val, y_val - optional data evaluated after every epoch
    Returns: {"train_loss": mean loss of each epoch (over samples, while the weights
             move), "val_accuracy": accuracy after each epoch (empty without X_val)}
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive integers, got {epochs!r}, "
                         f"{batch_size!r}")
    X = _check_images(X, "X")
    device = model.params["conv1.W"].device
    X = X.to(device)
    y = _check_labels(y, X.shape[0], model.num_classes).to(device)
    params = model.parameters()
    order_rng = torch.Generator().manual_seed(seed)
    state = None
    history: dict[str, list[float]] = {"train_loss": [], "val_accuracy": []}
    n = X.shape[0]
    for epoch in tqdm(range(epochs), desc="LeNet5 (L2)", disable=not progress, leave=False):
        order = torch.randperm(n, generator=order_rng).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            zero_grad(params)
            J = model.loss(X[rows], y[rows])
            J.backward()  # autograd: through the matmuls, the unfolds (col2im) and the maxima
            if optimizer == "adam":
                state = adam_step(params, lr, weight_decay=weight_decay, state=state)
            else:
                state = sgd_step(params, lr, momentum=momentum, weight_decay=weight_decay,
                                 state=state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}: the learning rate lr={lr} is too large; "
                                     "try lr/10")
        line = f"epoch {epoch + 1}/{epochs}  train loss {history['train_loss'][-1]:.4f}"
        if X_val is not None:
            history["val_accuracy"].append(model.score(X_val.to(device), torch.as_tensor(y_val)))
            line += f"  val accuracy {history['val_accuracy'][-1]:.4f}"
        if log is not None:
            log(line)
    return history


# --------------------------------------------------------------------------------------
# 8. Data: digits and MNIST as LeNet's 32x32 input field
# --------------------------------------------------------------------------------------


def lecun_normalize(pixels: np.ndarray) -> np.ndarray:
    """Map ink p in [0, 1] to the paper's input range: background -0.1, ink 1.175.

    x = -0.1 + 1.275 p   (LeCun et al. 1998, Section II-B: mean roughly 0, variance roughly 1)
    """
    return (np.float32(-0.1) + np.float32(1.275) * pixels).astype(np.float32)


def digits_to_32x32(X: np.ndarray) -> np.ndarray:
    """scikit-learn digits (N, 64) with ink 0..16 -> (N, 1, 32, 32) ink in [0, 1].

    Each of the 8x8 pixels becomes a 3x3 block (nearest-neighbour upsampling: 24x24),
    then 4 pixels of background on every side give LeNet's 32x32 field, with the digit
    in the middle like MNIST's.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8)  # ink in [0, 1]
    images = images.repeat(3, axis=2).repeat(3, axis=3)  # (N, 1, 24, 24)
    return np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))  # (N, 1, 32, 32)


def mnist_to_32x32(X: np.ndarray) -> np.ndarray:
    """MNIST (N, 28, 28) ink in [0, 1] -> (N, 1, 32, 32): 2 pixels of background around."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or X.shape[1:] != (28, 28):
        raise ValueError(f"mnist: expected (N, 28, 28) images, got shape {X.shape}")
    return np.pad(X[:, None], ((0, 0), (0, 0), (2, 2), (2, 2)))


def load_images(dataset: str, data_root=None):
    """(X_train, y_train, X_test, y_test, class_names) with X float32 (N, 1, 32, 32).

    Pixels are normalised with ``lecun_normalize`` (background -0.1, ink 1.175).
    Raises DatasetNotFoundError (MNIST without a local copy nor network).
    """
    if dataset == "digits":
        split = load_arrays("digits", standardize=False)  # raw ink 0..16
        to_field = digits_to_32x32
    elif dataset == "mnist":
        split = load_arrays("mnist", data_root=data_root, flatten=False)  # (N, 28, 28) in [0, 1]
        to_field = mnist_to_32x32
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'digits' or 'mnist'")
    X_train = lecun_normalize(to_field(split.X_train))
    X_test = lecun_normalize(to_field(split.X_test))
    classes = split.classes or [str(k) for k in range(10)]
    return X_train, split.y_train, X_test, split.y_test, classes


# --------------------------------------------------------------------------------------
# 9. The script
# --------------------------------------------------------------------------------------


DATASET_DEFAULTS = {
    "digits": {"epochs": 6, "batch_size": 32, "lr": 1e-3},
    "mnist": {"epochs": 4, "batch_size": 64, "lr": 1e-3},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level LeNet-5 on digits (default) or MNIST, with a hand-written Adam.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean training loss of the
             last epoch), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="LeNet-5 in low-level PyTorch (convolution by unfold + matmul, pooling by "
                    f"unfold, hand-written Adam / SGD). Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/03_CNN_LeNet/l2_lenet")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=0.0,
                        help="L2 penalty added to the gradient (default: %(default)s)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    parser.add_argument("--pool", choices=POOLS, default="max")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads, 0 = torch's default (default: %(default)s; "
                             "see torch_threads)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes = load_images(args.dataset, args.data_root)
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")

    model = LeNet5(num_classes=len(classes), activation=args.activation, pool=args.pool,
                   seed=args.seed, device=device)
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, optimizer=args.optimizer, momentum=args.momentum,
                    weight_decay=args.weight_decay, seed=args.seed, X_val=Xte, y_val=yte,
                    progress=args.progress, log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_accuracy, test_accuracy = model.score(Xtr, ytr), model.score(Xte, yte)
    final_loss = history["train_loss"][-1]
    print(f"LeNet5 (L2, {args.activation}/{args.pool}) on {args.dataset}: train accuracy "
          f"{train_accuracy:.4f}, test accuracy {test_accuracy:.4f}, final loss "
          f"{final_loss:.4f}, {seconds:.1f} s of training on {device}")

    title = f"L2 LeNet-5 on {args.dataset}"
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    predictions = model.predict(Xte).cpu().numpy()
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    filters = model.params["conv1.W"].detach().cpu().reshape(6, -1)  # (6, 25): one per row
    plot_weights(filters, image_shape=(5, 5), ncols=6, path=out / "c1_filters.png",
                 title=f"{title}: the 6 learned 5x5 filters of conv1")
    with torch.no_grad():
        _, features = model.forward(Xte[:1], return_features=True)
    plot_feature_maps(features["c1"][0].cpu(), ncols=6, path=out / "feature_maps_c1.png",
                      title=f"{title}: conv1 maps of one test digit ({y_test[0]})")
    plot_feature_maps(features["c3"][0].cpu(), ncols=8, path=out / "feature_maps_c3.png",
                      title=f"{title}: conv2 maps of the same digit")
    wrong = np.flatnonzero(predictions != y_test)[:16]
    if wrong.size:
        plot_image_grid(X_test[wrong], labels=y_test[wrong], predictions=predictions[wrong],
                        class_names=classes, path=out / "misclassified.png",
                        title=f"{title}: misclassified test images (true, pred)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
