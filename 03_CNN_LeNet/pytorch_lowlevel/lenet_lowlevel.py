"""LeNet-5 in low-level PyTorch: convolution by unfold + matmul, pooling by unfold (Level 2).

Convolution (a cross-correlation, as in every library) is "unfold the input into patches,
then one matrix multiplication" (im2col); pooling is "unfold into windows, then max or
mean"; LeNet-5 (LeCun et al. 1998, section II.B) in its modern form, the same network as
L1's, holds its parameters as plain tensors. Autograd differentiates unfold (its backward
is col2im), matmul and max, so what must be right is the forward arithmetic: padding,
strides, the patch order and the tie rule of max pooling. The dense layer, activations,
cross-entropy and the SGD / Adam steps are lesson 02's. No ``torch.nn`` layers, no
``F.conv2d`` / ``F.*pool*``, no ``torch.optim`` (a test checks it). Derivations:
``../theory.md`` (sections 2-4, 9.2); ``train.py`` beside this file trains it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from utils import import_lesson

# Lesson 02 taught these; LeNet uses them as they are: the dense layer x W + b, the
# activations, cross-entropy from logits and the hand-written optimiser steps.
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
linear, apply_activation, cross_entropy = _mlp.linear, _mlp.apply_activation, _mlp.cross_entropy
zero_grad, sgd_step, adam_step = _mlp.zero_grad, _mlp.sgd_step, _mlp.adam_step

ACTIVATIONS = ("relu", "tanh")
POOLS = ("max", "avg")
EVAL_BATCH = 500  # images per forward pass when predicting (bounds im2col's memory)


# --------------------------------------------------------------------------------------
# 1. Patches, im2col and the convolution
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
    """The patch matrix of a convolution, one row per output position (theory.md section 2).

    Inputs:  x (N, C, H, W); kernel_size, stride, padding as in ``extract_patches``
    Returns: rows (N*H_out*W_out, C*kH*kW); row (n*H_out + i)*W_out + j holds the window of
             output position (n, i, j), entry c*kH*kW + p*kW + q = x_pad[n, c, i*s_h + p,
             j*s_w + q]: the transpose, image by image, of ``F.unfold``'s (N, C*kH*kW, L)
    """
    patches = extract_patches(x, kernel_size, stride, padding)  # (N, C, Ho, Wo, kH, kW)
    n, c, h_out, w_out, kh, kw = patches.shape
    # (N, Ho, Wo, C, kH, kW) -> (N*Ho*Wo, C*kH*kW): this reshape copies (im2col proper)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c * kh * kw)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride=1, padding=0) -> torch.Tensor:
    """2-D convolution (cross-correlation) by im2col and one matrix multiplication.

        out[n, o, i, j] = b[o] + sum_{c,p,q} W[o, c, p, q] x_pad[n, c, i s_h + p, j s_w + q]

    i.e. Y_mat = X_col K_col + b with X_col = ``im2col(x)`` (N*H_out*W_out, C*kH*kW) and
    K_col = W.reshape(C_out, C*kH*kW)^T: a dense layer applied to every patch.

    Inputs:  x (N, C, H, W); weight (C_out, C, kH, kW); bias (C_out,) or None;
             stride (>= 1), padding (>= 0): int or (h, w). Same dtype and device for all.
    Returns: (N, C_out, H_out, W_out), H_out = (H + 2 pad_h - kH) // s_h + 1
    """
    x = _check_images(x)
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
    rows = im2col(x, (kh, kw), (sh, sw), (ph, pw))  # (N*Ho*Wo, C*kH*kW)
    out = rows @ weight.reshape(c_out, c_in * kh * kw).T  # (N*Ho*Wo, C_out): one matmul
    if bias is not None:
        out = out + bias  # (C_out,) broadcasts over the rows
    return out.reshape(n, h_out, w_out, c_out).permute(0, 3, 1, 2)  # (N, C_out, Ho, Wo)


# --------------------------------------------------------------------------------------
# 2. Pooling by unfold
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
# 3. LeNet-5 with its parameters as plain tensors
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

    Where we depart from the paper: the modern form of L1's ``LeNet5`` (max pooling
    without parameters, C3 fully connected, ReLU, a linear output with cross-entropy; the
    paper's own network is L3's ``paper/lenet_paper.py``; theory.md section 7).
    """

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, input_size: int = 32,
                 padding: int = 0, activation: str = "relu", pool: str = "max", seed: int = 0,
                 dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.input_size, self.padding = input_size, padding
        self.activation, self.pool = activation, pool
        self.flat_size = self._flat_size(input_size, padding)  # side of conv2's pooled maps
        self.params = self._init_params(seed, dtype, torch.device(device))

    @staticmethod
    def _flat_size(input_size, padding: int) -> int:
        """Side length s of the (16, s, s) maps that are flattened: 5 for a 32x32 input."""
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
        act = lambda a: apply_activation(a, self.activation)  # noqa: E731 (relu or tanh)
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
        return cross_entropy(self.forward(x), y)

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
# 4. The checks at the door: the public functions above take ints or (h, w) pairs, and
#    images (N, C, H, W)
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
