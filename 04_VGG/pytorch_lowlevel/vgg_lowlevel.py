"""VGG in low-level PyTorch: convolution, max pooling and batch norm from tensor ops (Level 2).

What this file builds
---------------------
The four layers a VGG is made of, each from strided views, matmul and reductions::

    conv2d      out[n, o, i, j] = b[o] + sum_{c,p,q} W[o, c, p, q] x_pad[n, c, i s + p, j s + q]
    relu        max(0, a)
    max_pool2d  out[n, c, i, j] = max_{p,q < k} x[n, c, i s + p, j s + q]
    batch_norm  y = gamma (x - mu) / sqrt(var + eps) + beta,    per channel

and from them the CIFAR-sized VGG of the Level 3 file (``vgg_cifar``): the conv stacks of
a configuration of Simonyan & Zisserman's Table 1 (conv3 -> [batch norm] -> ReLU, 2x2 max
pooling with stride 2 after each stage), five stages taking 32 x 32 to 1 x 1, and one
linear layer. The parameters are plain tensors, named like the keys of the Level 3
model's ``state_dict()`` ("features.0.weight", ...), so weights copy across unchanged.

How: as_strided views
---------------------
A tensor is a block of memory plus a *stride* per axis: how many elements to skip to
move one step along it. A contiguous x (N, C, H, W) has strides (CHW, HW, W, 1). The
patch view needs two more axes, and no copy::

    x.as_strided((N, C, H_out, W_out, kH, kW),
                 (CHW, HW, s_h W, s_w, W, 1))   # (N, C, H_out, W_out, kH, kW)

Moving one output row (i -> i + 1) skips s_h input rows; moving one kernel row (p -> p + 1)
skips one input row. Windows overlap (stride < kernel): the view reads the same memory
several times (``windows_as_strided``). Lesson 03 built the same view with
``Tensor.unfold``, which makes exactly this view and has a faster backward pass, so the
layers call ``windows`` (unfold); a test checks that the two views are equal. The
convolution then reorders the patches into a (N H_out W_out, C kH kW) matrix and does one
matmul with the (C kH kW, C_out) weight matrix; max pooling reduces each window.

Batch normalisation (Ioffe & Szegedy 2015; added to VGG after the paper)
------------------------------------------------------------------------
Training: mu and var are the mean and the *biased* variance (divide by m = N H W) of each
channel over the batch and the positions; the output uses them. The running estimates
move with PyTorch's convention (momentum is the weight of the NEW value)::

    running_mean = (1 - momentum) running_mean + momentum mu
    running_var  = (1 - momentum) running_var  + momentum var * m / (m - 1)   (unbiased)

Evaluation: the running estimates replace mu and var, so an image's output no longer
depends on the rest of its batch. Autograd differentiates through mu and var (the
exercises derive that backward pass by hand).

The loss (softmax cross-entropy with ``logsumexp``) and the optimiser (SGD with momentum
and weight decay, ``sgd_step``, with ``torch.optim.SGD``'s update rule) are written out.
No ``torch.nn`` layers, no ``F.conv2d`` / ``F.*pool*`` / ``F.batch_norm``, no ``torch.optim``
(a test checks it).

Run it from the repository root::

    python 04_VGG/pytorch_lowlevel/vgg_lowlevel.py                       # digits, seconds
    python -m 04_VGG.pytorch_lowlevel.vgg_lowlevel --dataset cifar10 --data-root DIR
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
    positive_int,
    prepare_out_dir,
    probability,
)
from utils.data_loaders import load_arrays
from utils.training_utils import (
    get_device,
    seed_everything,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_curves, plot_feature_maps

# Table 1 of the paper (the same lists as the Level 3 file): an int C is a conv3-C, a pair
# ("conv1", C) a 1x1 conv-C, "M" a 2x2 max pooling with stride 2.
CONFIGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, ("conv1", 256), "M",
          512, 512, ("conv1", 512), "M", 512, 512, ("conv1", 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
EVAL_BATCH = 250  # images per forward pass when predicting (bounds the patch matrices)


# --------------------------------------------------------------------------------------
# 1. Argument checks
# --------------------------------------------------------------------------------------


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
        raise ValueError(f"{name}: expected a float tensor, got {x.dtype}")
    return x


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------
# 2. Windows by as_strided, the convolution, ReLU, max pooling
# --------------------------------------------------------------------------------------


def windows_as_strided(x: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Every k x k window of x, ``stride`` apart, as a strided view (no copy).

    Inputs:  x (N, C, H, W) float (made contiguous first if it is not); kernel_size k <= H, W
    Returns: (N, C, H_out, W_out, k, k), H_out = (H - k) // stride + 1; entry
             [n, c, i, j, p, q] is x[n, c, i*stride + p, j*stride + q]
    """
    x = _check_images(x).contiguous()
    k = _positive_int(kernel_size, "kernel_size")
    s = _positive_int(stride, "stride")
    n, c, h, w = x.shape
    if h < k or w < k:
        raise ValueError(f"kernel {k}x{k} is larger than the (padded) input {h}x{w}")
    h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
    sn, sc, sh, sw = x.stride()  # (C*H*W, H*W, W, 1) for a contiguous x
    return x.as_strided((n, c, h_out, w_out, k, k), (sn, sc, s * sh, s * sw, sh, sw))


def windows(x: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """The same view as ``windows_as_strided``, built by ``Tensor.unfold`` (lesson 03).

    ``unfold(dim, k, s)`` makes exactly the as_strided view above, one axis at a time; its
    backward pass knows the windows form a regular grid and runs about a third faster than
    the general as_strided backward (we measured 0.70 s against 1.10 s for ten 3x3
    convolutions of a (64, 8, 32, 32) batch, forward and backward), so the layers use it.
    A test checks the two views are equal.

    Inputs and Returns: as in ``windows_as_strided``
    """
    x = _check_images(x)
    k = _positive_int(kernel_size, "kernel_size")
    s = _positive_int(stride, "stride")
    if x.shape[2] < k or x.shape[3] < k:
        raise ValueError(f"kernel {k}x{k} is larger than the (padded) input "
                         f"{x.shape[2]}x{x.shape[3]}")
    return x.unfold(2, k, s).unfold(3, k, s)  # (N, C, H_out, W_out, k, k)


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           stride: int = 1, padding: int = 0) -> torch.Tensor:
    """2-D convolution (cross-correlation) with square kernels: patches, then one matmul.

        out[n, o, i, j] = b[o] + sum_{c,p,q} W[o, c, p, q] x_pad[n, c, i s + p, j s + q]

    Inputs:  x (N, C, H, W); weight (C_out, C, k, k); bias (C_out,) or None; stride >= 1;
             padding >= 0 zeros on every side (VGG: k = 3, padding 1 keeps H and W)
    Returns: (N, C_out, H_out, W_out), H_out = (H + 2 padding - k) // stride + 1
    """
    x = _check_images(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4 or \
            weight.shape[2] != weight.shape[3]:
        raise ValueError("conv2d: weight must be a 4-D tensor (C_out, C_in, k, k), got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else weight!r}")
    c_out, c_in, k, _ = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels but the weight expects {c_in} "
                         f"(weight shape {tuple(weight.shape)} = (C_out, C_in, k, k))")
    if x.dtype != weight.dtype:
        raise ValueError(f"conv2d: x is {x.dtype} but the weight is {weight.dtype}")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"conv2d: bias must have shape ({c_out},), got {tuple(bias.shape)}")
    p = _positive_int(padding, "padding", minimum=0)
    if p:
        x = F.pad(x, (p, p, p, p))  # (N, C, H + 2p, W + 2p)
    patches = windows(x, k, stride)  # (N, C, Ho, Wo, k, k), a view
    n, _, h_out, w_out, _, _ = patches.shape
    # (N, Ho, Wo, C, k, k) -> (N*Ho*Wo, C*k*k): one row per output position (this copies)
    rows = patches.permute(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c_in * k * k)
    out = rows @ weight.reshape(c_out, c_in * k * k).T  # (N*Ho*Wo, C_out)
    if bias is not None:
        out = out + bias
    return out.reshape(n, h_out, w_out, c_out).permute(0, 3, 1, 2)  # (N, C_out, Ho, Wo)


def relu(x: torch.Tensor) -> torch.Tensor:
    """max(0, x) elementwise; the gradient is 1 where x > 0 and 0 elsewhere (also at 0,
    the convention of ``torch.relu``)."""
    return torch.where(x > 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


def max_pool2d(x: torch.Tensor, kernel_size: int = 2, stride: int | None = None) -> torch.Tensor:
    """Max pooling without padding (VGG: 2x2 windows, stride 2, the size halves).

    Inputs:  x (N, C, H, W) float; kernel_size k; stride (default k)
    Returns: (N, C, H_out, W_out), H_out = (H - k) // stride + 1 (floor, like torch)

    The maximum is taken along each window row, then across the rows. ``max(dim)``
    returns the FIRST maximal index, so the gradient of a window with tied values (the
    zeros a ReLU leaves) goes to its first maximum in row-major order, the element
    ``F.max_pool2d`` sends it to; ``amax`` would split it among the ties.
    """
    k = _positive_int(kernel_size, "kernel_size")
    s = k if stride is None else _positive_int(stride, "stride")
    view = windows(x, k, s)  # (N, C, Ho, Wo, k, k)
    return view.max(dim=-1).values.max(dim=-1).values  # (N, C, Ho, Wo)


# --------------------------------------------------------------------------------------
# 3. Batch normalisation, train and eval
# --------------------------------------------------------------------------------------


def batch_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               running_mean: torch.Tensor, running_var: torch.Tensor, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> torch.Tensor:
    """Batch normalisation of each channel of x (Ioffe & Szegedy 2015, Algorithm 1 and 2).

        training:   mu = mean_{n,h,w} x,  var = mean_{n,h,w} (x - mu)^2   (biased, m = NHW)
                    running_mean <- (1 - momentum) running_mean + momentum mu
                    running_var  <- (1 - momentum) running_var  + momentum var m / (m - 1)
        evaluation: mu, var = running_mean, running_var
        y = gamma (x - mu) / sqrt(var + eps) + beta

    Inputs:  x (N, C, H, W); gamma, beta, running_mean, running_var (C,); the running
             tensors are updated IN PLACE in training (PyTorch's momentum convention)
    Returns: y (N, C, H, W)
    """
    x = _check_images(x)
    c = x.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},), got {tuple(t.shape)}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum!r}")
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]  # values per channel
        if m < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel "
                             f"(got input {tuple(x.shape)}); use a batch of >= 2 images")
        mu = x.mean(dim=(0, 2, 3))  # (C,)
        var = ((x - mu[:, None, None]) ** 2).mean(dim=(0, 2, 3))  # (C,) biased
        with torch.no_grad():  # the running estimates are not part of the graph
            running_mean.mul_(1 - momentum).add_(momentum * mu)
            running_var.mul_(1 - momentum).add_(momentum * var * (m / (m - 1)))  # unbiased
    else:
        mu, var = running_mean, running_var
    x_hat = (x - mu[:, None, None]) / torch.sqrt(var[:, None, None] + eps)  # (N, C, H, W)
    return gamma[:, None, None] * x_hat + beta[:, None, None]


# --------------------------------------------------------------------------------------
# 4. The linear layer and the loss
# --------------------------------------------------------------------------------------


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """y = x W^T + b with W (D_out, D_in) stored like torch's nn.Linear (so weights copy
    from the Level 3 model unchanged). Inputs: x (N, D_in); Returns: (N, D_out)."""
    return x @ W.T + b


def softmax_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J = 1/N sum_i [ logsumexp_k Z_ik - Z_i[y_i] ]  (mean cross-entropy from logits).

    Inputs: logits (N, K) float; y (N,) int64 labels in 0..K-1;  Returns: scalar tensor
    """
    if logits.ndim != 2 or y.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: expected logits (N, K) and labels (N,), got "
                         f"{tuple(logits.shape)} and {tuple(y.shape)}")
    return (torch.logsumexp(logits, dim=1) - logits.gather(1, y[:, None])[:, 0]).mean()


# --------------------------------------------------------------------------------------
# 5. The network
# --------------------------------------------------------------------------------------


class VGGLowLevel:
    """The CIFAR-sized VGG (the Level 3 ``vgg_cifar``) with its weights as plain tensors.

    For every conv3 (conv1) of ``config``: conv2d(k=3, padding 1) [-> batch_norm] -> relu;
    for every "M": max_pool2d(2); then flatten and one linear layer 8*width -> num_classes.
    ``params`` and ``buffers`` use the Level 3 state-dict names ("features.0.weight",
    "features.1.running_mean", "classifier.weight", ...).

    Inputs of forward: x (N, in_channels, 32, 32) (any H, W in 32..63: five halvings to 1)
    Returns: logits (N, num_classes)
    """

    def __init__(self, config: str = "A", num_classes: int = 10, batch_norm: bool = True,
                 width: int = 64, in_channels: int = 3, momentum: float = 0.1,
                 eps: float = 1e-5, seed: int = 0, dtype=torch.float32, device="cpu"):
        if config not in CONFIGS:
            raise ValueError(f"config must be one of {sorted(CONFIGS)}, got {config!r}")
        self.config, self.batch_norm = config, batch_norm
        self.num_classes = _positive_int(num_classes, "num_classes")
        self.width = _positive_int(width, "width")
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.momentum, self.eps = momentum, eps
        self.training = True
        g = torch.Generator().manual_seed(seed)
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        self.layers: list[tuple] = []  # ("conv", key, k) / ("bn", key) / ("relu",) / ("pool",)

        def glorot(shape, fan_in, fan_out):
            # Glorot & Bengio: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); drawn in float64
            a = math.sqrt(6.0 / (fan_in + fan_out))
            return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * a

        channels, index = in_channels, 0  # index: position in Level 3's nn.Sequential
        for item in CONFIGS[config]:
            if item == "M":
                self.layers.append(("pool",))
                index += 1
                continue
            k, out = (1, item[1]) if isinstance(item, tuple) else (3, item)
            out = max(1, out * width // 64)
            key = f"features.{index}"
            self.params[f"{key}.weight"] = glorot((out, channels, k, k), channels * k * k,
                                                  out * k * k)
            self.params[f"{key}.bias"] = torch.zeros(out, dtype=torch.float64)
            self.layers.append(("conv", key, k))
            index += 1
            if batch_norm:
                key = f"features.{index}"
                self.params[f"{key}.weight"] = torch.ones(out, dtype=torch.float64)  # gamma
                self.params[f"{key}.bias"] = torch.zeros(out, dtype=torch.float64)  # beta
                self.buffers[f"{key}.running_mean"] = torch.zeros(out, dtype=torch.float64)
                self.buffers[f"{key}.running_var"] = torch.ones(out, dtype=torch.float64)
                self.layers.append(("bn", key))
                index += 1
            self.layers.append(("relu",))
            index += 1
            channels = out
        self.params["classifier.weight"] = glorot((num_classes, channels), channels, num_classes)
        self.params["classifier.bias"] = torch.zeros(num_classes, dtype=torch.float64)
        for store in (self.params, self.buffers):
            for key in store:
                store[key] = store[key].to(dtype=dtype, device=device)
        for p in self.params.values():
            p.requires_grad_(True)

    # -- bookkeeping ---------------------------------------------------------------------
    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.params.values())

    def train(self, mode: bool = True) -> VGGLowLevel:
        self.training = mode
        return self

    def eval(self) -> VGGLowLevel:
        return self.train(False)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Parameters and running statistics, detached copies, Level 3 names."""
        return {k: v.detach().clone() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state: dict) -> None:
        """Copy tensors of a Level 3 ``vgg_cifar`` state dict (same config and width) in.

        Keys the low-level model does not keep (BN's ``num_batches_tracked``) are skipped;
        a missing key or a shape mismatch is a ValueError."""
        with torch.no_grad():
            for store in (self.params, self.buffers):
                for key, value in store.items():
                    if key not in state:
                        raise ValueError(f"load_state_dict: missing {key!r} (a different "
                                         "config, width or batch_norm?)")
                    if tuple(state[key].shape) != tuple(value.shape):
                        raise ValueError(f"load_state_dict: {key} has shape "
                                         f"{tuple(state[key].shape)}, expected "
                                         f"{tuple(value.shape)}")
                    value.copy_(state[key])

    # -- the forward pass ----------------------------------------------------------------
    def forward(self, x: torch.Tensor, return_features: bool = False):
        """Logits (N, num_classes); with return_features also {"stage1".."stage5": the
        activations after each stage's last ReLU}."""
        x = _check_images(x)
        if x.shape[1] != self.in_channels or min(x.shape[2:]) < 32:
            raise ValueError(f"VGGLowLevel: expected images (N, {self.in_channels}, H, W) with "
                             f"H, W >= 32, got {tuple(x.shape)}")
        features, stage = {}, 1
        for layer in self.layers:
            if layer[0] == "conv":
                _, key, k = layer
                x = conv2d(x, self.params[f"{key}.weight"], self.params[f"{key}.bias"],
                           padding=k // 2)
            elif layer[0] == "bn":
                key = layer[1]
                x = batch_norm(x, self.params[f"{key}.weight"], self.params[f"{key}.bias"],
                               self.buffers[f"{key}.running_mean"],
                               self.buffers[f"{key}.running_var"], self.training,
                               self.momentum, self.eps)
            elif layer[0] == "relu":
                x = relu(x)
            else:
                if return_features:
                    features[f"stage{stage}"] = x
                stage += 1
                x = max_pool2d(x, 2)  # (N, C, H/2, W/2)
        x = x.mean(dim=(2, 3))  # (N, C): the 1x1 maps (the Level 3 AdaptiveAvgPool2d(1))
        logits = linear(x, self.params["classifier.weight"], self.params["classifier.bias"])
        return (logits, features) if return_features else logits

    __call__ = forward

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return softmax_cross_entropy(self.forward(x), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Classes (N,) int64, in evaluation mode (running statistics), in batches."""
        was_training = self.training
        self.eval()
        out = torch.cat([self.forward(x[i:i + EVAL_BATCH]).argmax(1)
                         for i in range(0, x.shape[0], EVAL_BATCH)])
        self.train(was_training)
        return out

    def score(self, x: torch.Tensor, y) -> float:
        return float((self.predict(x).cpu() == torch.as_tensor(y).cpu()).double().mean())


# --------------------------------------------------------------------------------------
# 6. SGD with momentum and weight decay, by hand
# --------------------------------------------------------------------------------------


def zero_grad(params: Sequence[torch.Tensor]) -> None:
    for p in params:
        p.grad = None


@torch.no_grad()
def sgd_step(params: Sequence[torch.Tensor], lr: float, momentum: float = 0.0,
             weight_decay: float = 0.0, state: dict | None = None) -> dict:
    """One step of SGD with momentum and L2 weight decay, ``torch.optim.SGD``'s rule:

        g = grad + weight_decay p
        v = g                       (first step)
        v = momentum v + g          (later steps)
        p = p - lr v

    (The paper, Section 3.1: batch 256, momentum 0.9, weight decay 5e-4, lr 1e-2.)
    Inputs: params with .grad (those without are skipped); state from the previous call
    Returns: the state (the velocity of each parameter), to pass to the next call
    """
    if not lr > 0:
        raise ValueError(f"sgd_step: lr must be > 0, got {lr!r}")
    if not 0.0 <= momentum < 1.0 or weight_decay < 0:
        raise ValueError(f"sgd_step: need momentum in [0, 1) and weight_decay >= 0, got "
                         f"{momentum!r}, {weight_decay!r}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad if weight_decay == 0 else p.grad + weight_decay * p
        if momentum:
            if i not in state:
                state[i] = g.clone()
            else:
                state[i].mul_(momentum).add_(g)
            g = state[i]
        p.sub_(lr * g)
    return state


# --------------------------------------------------------------------------------------
# 7. Data, augmentation and the training loop
# --------------------------------------------------------------------------------------


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Pad every image by ``padding`` zeros and cut a random H x W window out of it.

    Inputs: x (N, C, H, W); Returns: (N, C, H, W)"""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).tolist()
    return torch.stack([padded[i, :, a:a + h, b:b + w] for i, (a, b) in enumerate(zip(dy, dx))])


def _check_labels(y, n: int, num_classes: int) -> torch.Tensor:
    t = torch.as_tensor(y)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"y: expected {n} labels of shape ({n},), got shape {tuple(t.shape)}")
    if t.is_floating_point():
        raise ValueError(f"y: expected integer class labels, got {t.dtype}")
    if n and (int(t.min()) < 0 or int(t.max()) >= num_classes):
        raise ValueError(f"y: labels must be 0..{num_classes - 1}, got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    return t.to(torch.int64)


def train(model: VGGLowLevel, X: torch.Tensor, y, *, epochs: int, batch_size: int, lr: float,
          momentum: float = 0.9, weight_decay: float = 5e-4, crop: int = 4, seed: int = 0,
          X_val: torch.Tensor | None = None, y_val=None, progress: bool = False,
          log=None) -> dict[str, list[float]]:
    """Mini-batch training: zero_grad -> (crop) -> forward -> loss -> backward -> sgd_step,
    with the learning rate decayed by a cosine over the epochs (as the Level 3 script).

    Inputs:  X (N, C, 32, 32) float in the model's dtype; y (N,) labels; crop - padding of
             the random crops (0: none); X_val, y_val - evaluated after every epoch
    Returns: {"train_loss": mean loss per epoch, "val_accuracy": accuracy per epoch}
    """
    X = _check_images(X, "X")
    device = model.params["classifier.weight"].device
    X = X.to(device)
    y = _check_labels(y, X.shape[0], model.num_classes).to(device)
    params = model.parameters()
    rng = torch.Generator().manual_seed(seed)
    state = None
    history: dict[str, list[float]] = {"train_loss": [], "val_accuracy": []}
    n = X.shape[0]
    model.train()
    for epoch in tqdm(range(epochs), desc="VGG (L2)", disable=not progress, leave=False):
        lr_now = lr * (1 + math.cos(math.pi * epoch / epochs)) / 2  # cosine, per epoch
        order = torch.randperm(n, generator=rng).to(device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            xb = random_crop(X[rows], crop, rng) if crop else X[rows]
            zero_grad(params)
            J = model.loss(xb, y[rows])
            J.backward()  # through matmuls, strided views, maxima and the batch statistics
            state = sgd_step(params, lr_now, momentum=momentum, weight_decay=weight_decay,
                             state=state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}: lr={lr} is too large; try lr/10")
        line = f"epoch {epoch + 1}/{epochs}  train loss {history['train_loss'][-1]:.4f}"
        if X_val is not None:
            history["val_accuracy"].append(model.score(X_val.to(device), y_val))
            line += f"  val accuracy {history['val_accuracy'][-1]:.4f}"
        if log is not None:
            log(line)
    return history


def digits_to_rgb32(X: np.ndarray) -> np.ndarray:
    """scikit-learn digits (N, 64), ink 0..16 -> (N, 3, 32, 32) in [0, 1]: upsampling x3
    (each pixel a 3x3 block), 4 pixels of background around, the grey copied to 3 channels."""
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8).repeat(3, axis=2).repeat(3, axis=3)
    return np.repeat(np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4))), 3, axis=1)


def load_images(dataset: str, data_root=None):
    """(X_train, y_train, X_test, y_test, classes, note): X float32 (N, 3, 32, 32), every
    channel standardised with the training set's statistics. Raises DatasetNotFoundError."""
    if dataset == "digits":
        split = load_arrays("digits", standardize=False)
        X_train, X_test = digits_to_rgb32(split.X_train), digits_to_rgb32(split.X_test)
    elif dataset == "cifar10":
        split = load_arrays("cifar10", data_root=data_root)  # (N, 32, 32, 3) in [0, 1]
        X_train = np.ascontiguousarray(split.X_train.transpose(0, 3, 1, 2))  # (N, 3, 32, 32)
        X_test = np.ascontiguousarray(split.X_test.transpose(0, 3, 1, 2))
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'digits' or 'cifar10'")
    mean = X_train.mean(axis=(0, 2, 3), keepdims=True)  # (1, 3, 1, 1)
    std = X_train.std(axis=(0, 2, 3), keepdims=True) + np.float32(1e-6)
    X_train = ((X_train - mean) / std).astype(np.float32)
    X_test = ((X_test - mean) / std).astype(np.float32)
    classes = split.classes or [str(k) for k in range(10)]
    return X_train, split.y_train, X_test, split.y_test, classes, getattr(split, "note", None)


# --------------------------------------------------------------------------------------
# 8. The script
# --------------------------------------------------------------------------------------


DATASET_DEFAULTS = {
    "digits": {"epochs": 3, "batch_size": 64, "lr": 0.05, "width": 8},
    "cifar10": {"epochs": 10, "batch_size": 64, "lr": 0.05, "width": 16},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level VGG on digits (default) or CIFAR-10 with a hand-written SGD.

    Returns: {"test_accuracy", "train_accuracy", "final_loss", "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="A CIFAR-sized VGG in low-level PyTorch (convolution and pooling by "
                    "as_strided views, batch norm by hand, hand-written SGD with momentum and "
                    f"weight decay). Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/04_VGG/l2_vgg")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="A")
    parser.add_argument("--width", type=positive_int, default=None,
                        help="channels of the first stage (default: %(default)s)")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4,
                        help="default: %(default)s")
    parser.add_argument("--crop", type=non_negative_int, default=4,
                        help="padding of the random crops, 0 for no augmentation "
                             "(default: %(default)s)")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads, 0 = torch's default (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes, note = load_images(args.dataset,
                                                                      args.data_root)
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
    label = args.dataset
    if note:  # the 4k / 1k CIFAR-10 subset: say so wherever a result is shown
        print(f"note: {note}")
        label = f"{args.dataset} subset ({len(y_train)}/{len(y_test)})"
    model = VGGLowLevel(args.config, num_classes=len(classes), batch_norm=args.batch_norm,
                        width=args.width, seed=args.seed, device=device)
    print(f"VGG-{args.config} (L2, width {args.width}): {model.num_parameters():,} parameters")
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train), torch.from_numpy(y_test)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    momentum=args.momentum, weight_decay=args.weight_decay, crop=args.crop,
                    seed=args.seed, X_val=Xte, y_val=yte, progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    train_accuracy, test_accuracy = model.score(Xtr, ytr), model.score(Xte, yte)
    final_loss = history["train_loss"][-1]
    print(f"VGG-{args.config} (L2) on {label}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s "
          f"of training on {device}")
    title = f"L2 VGG-{args.config} on {label}"
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    model.eval()
    with torch.no_grad():
        _, features = model.forward(Xte[:1], return_features=True)
    for stage in (1, 3, 5):
        plot_feature_maps(features[f"stage{stage}"][0].cpu(), ncols=8,
                          path=out / f"feature_maps_stage{stage}.png",
                          title=f"{title}: stage {stage} maps of one test image")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
