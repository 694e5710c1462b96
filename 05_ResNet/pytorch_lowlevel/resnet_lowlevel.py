"""ResNet from tensors and autograd: convolution, batch norm, residual blocks (Level 2, lesson 05).

What this file builds, with nothing from ``torch.nn`` but ``functional.pad``:

1. ``conv2d``: convolution as patches (``Tensor.unfold``) times a weight matrix;
2. ``batch_norm``: Ioffe & Szegedy (2015), with PyTorch's running-statistics convention;
3. ``basic_block`` and ``bottleneck``: the residual blocks of He et al. (2015), Fig. 5,
   as functions of a dict of tensors whose keys are torchvision's ``state_dict`` keys
   (``conv1.weight``, ``bn1.running_mean``, ``downsample.0.weight`` ...), so that a
   torchvision block's weights drop straight in;
4. ``CifarResNet``: the CIFAR-10 network of Section 4.2 (6n + 2 layers, option-A
   shortcuts) as a small class holding those tensors;
5. ``sgd_step``: SGD with momentum and weight decay written out (the paper's optimiser,
   Section 3.4 and 4.2), and a training loop that calls it.

Autograd provides every backward pass: through the matmuls, the unfolds, the means and
variances of batch norm, and the additions of the shortcuts. That last one is the point
of the lesson: d(F(x) + x)/dx = dF/dx + I, so the gradient of every block reaches its
input at least through the identity (theory.md, "Why residuals help").

Run it from the repository root::

    python 05_ResNet/pytorch_lowlevel/resnet_lowlevel.py                     # digits, ResNet-8
    python 05_ResNet/pytorch_lowlevel/resnet_lowlevel.py --dataset cifar10 --data-root DIR
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
from utils.visualization import plot_confusion_matrix, plot_curves

BN_EPS = 1e-5  # PyTorch's default epsilon for batch norm
BN_MOMENTUM = 0.1  # PyTorch's convention: running <- (1 - m) running + m batch

# --------------------------------------------------------------------------------------
# 1. Convolution: patches times a weight matrix
# --------------------------------------------------------------------------------------


def _check_images(x, name: str = "x") -> torch.Tensor:
    """A clear error for anything but a (N, C, H, W) floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch of images (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")
    return x


def conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1,
           padding: int = 0) -> torch.Tensor:
    """2-D convolution (cross-correlation), no bias (ResNet's convolutions have none).

        out[n, o, i, j] = sum_{c, p, q} W[o, c, p, q] x_pad[n, c, i s + p, j s + q]

    Inputs:  x (N, C, H, W); weight (C_out, C, k, k) of the same dtype; stride >= 1;
             padding >= 0 (zeros on every side)
    Returns: (N, C_out, H_out, W_out), H_out = (H + 2 padding - k) // stride + 1
    """
    x = _check_images(x)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError("conv2d: weight must be a 4-D tensor (C_out, C_in, k, k)")
    c_out, c_in, kh, kw = weight.shape
    if x.shape[1] != c_in:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels, the weight expects {c_in} "
                         f"(weight shape {tuple(weight.shape)})")
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p)
    n = x.shape[0]
    # unfold(dim, size, step) turns a dim into (windows, size): a strided view, no copy
    patches = x.unfold(2, kh, stride).unfold(3, kw, stride)  # (N, C, Ho, Wo, k, k)
    h_out, w_out = patches.shape[2], patches.shape[3]
    # (N, Ho, Wo, C, k, k) -> (N Ho Wo, C k k): one row per output position (copies)
    cols = patches.permute(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c_in * kh * kw)
    out = cols @ weight.reshape(c_out, c_in * kh * kw).T  # (N Ho Wo, C_out)
    return out.reshape(n, h_out, w_out, c_out).permute(0, 3, 1, 2)  # (N, C_out, Ho, Wo)


# --------------------------------------------------------------------------------------
# 2. Batch normalisation (Ioffe & Szegedy 2015, Algorithm 1)
# --------------------------------------------------------------------------------------


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               running_mean: torch.Tensor, running_var: torch.Tensor, training: bool,
               momentum: float = BN_MOMENTUM, eps: float = BN_EPS) -> torch.Tensor:
    """Batch norm over (N, H, W) for each channel.

    Training (statistics of this batch, m = N H W values per channel):
        mu = mean(x),  var = mean((x - mu)^2)                         (biased: divide by m)
        y  = gamma (x - mu) / sqrt(var + eps) + beta
        running_mean <- (1 - momentum) running_mean + momentum mu     (in place)
        running_var  <- (1 - momentum) running_var + momentum var m / (m - 1)   (unbiased)
    Evaluation: the same y with running_mean and running_var in place of mu and var.

    PyTorch's ``momentum`` is the weight of the NEW value (0.1), the opposite of the
    usual meaning of momentum in optimisers.

    Inputs:  x (N, C, H, W); weight gamma, bias beta, running_mean, running_var all (C,);
             training - which statistics to use (and whether to update the running ones)
    Returns: (N, C, H, W)
    """
    if training:
        m = x.shape[0] * x.shape[2] * x.shape[3]
        if m < 2:
            raise ValueError("batch_norm: training needs more than one value per channel "
                             f"(got input of shape {tuple(x.shape)})")
        mean = x.mean(dim=(0, 2, 3))  # (C,)
        var = ((x - mean[:, None, None]) ** 2).mean(dim=(0, 2, 3))  # (C,) biased
        with torch.no_grad():  # the running statistics are not trained: no graph
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * m / (m - 1))
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean[:, None, None]) / torch.sqrt(var[:, None, None] + eps)
    return weight[:, None, None] * x_hat + bias[:, None, None]


def _conv_bn(x: torch.Tensor, params: dict, conv: str, bn: str, stride: int, padding: int,
             training: bool) -> torch.Tensor:
    """BN(W * x): "BN right after each convolution" (Section 3.4)."""
    y = conv2d(x, params[f"{conv}.weight"], stride, padding)
    return batch_norm(y, params[f"{bn}.weight"], params[f"{bn}.bias"],
                      params[f"{bn}.running_mean"], params[f"{bn}.running_var"], training)


# --------------------------------------------------------------------------------------
# 3. Residual blocks (Section 3.2, Fig. 2 and Fig. 5)
# --------------------------------------------------------------------------------------


def shortcut_a(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """Option A (Section 3.3): subsample by ``stride`` and append zero channels.

    Inputs:  x (N, C, H, W); out_channels >= C; stride >= 1
    Returns: (N, out_channels, ceil(H / stride), ceil(W / stride)); [:, :C] = x[:, :, ::s, ::s]
    """
    x = x[:, :, ::stride, ::stride]  # (N, C, H/s, W/s)
    extra = out_channels - x.shape[1]
    if extra < 0:
        raise ValueError(f"shortcut_a: cannot go from {x.shape[1]} to {out_channels} channels")
    if extra == 0:
        return x
    zeros = x.new_zeros(x.shape[0], extra, x.shape[2], x.shape[3])
    return torch.cat([x, zeros], dim=1)  # (N, out_channels, H/s, W/s)


def _shortcut(x: torch.Tensor, params: dict, stride: int, training: bool,
              out_channels: int, shortcut: str) -> torch.Tensor:
    """Identity, option A, or a projection W_s x + BN (option B, eq. 2) when
    ``downsample.0.weight`` is among the params."""
    if "downsample.0.weight" in params:
        return _conv_bn(x, params, "downsample.0", "downsample.1", stride, 0, training)
    if stride != 1 or x.shape[1] != out_channels:
        if shortcut != "A":
            raise ValueError(f"the block changes shape ({x.shape[1]} -> {out_channels} "
                             f"channels, stride {stride}) but has no downsample.* params")
        return shortcut_a(x, out_channels, stride)
    return x


def basic_block(x: torch.Tensor, params: dict, stride: int = 1, training: bool = True,
                shortcut: str = "B") -> torch.Tensor:
    """The two-layer residual block of ResNet-18/34 and the CIFAR nets (Fig. 5 left).

        F(x) = BN_2(W_2 * relu(BN_1(W_1 * x)))        W_1: 3x3 with stride s, W_2: 3x3
        y    = relu(F(x) + shortcut(x))                eq. 1 / eq. 2

    Inputs:  x (N, C_in, H, W); params - torchvision BasicBlock state_dict keys:
             conv1.weight (C, C_in, 3, 3), bn1.{weight, bias, running_mean, running_var} (C,),
             conv2.weight (C, C, 3, 3), bn2.*, and for a projection shortcut
             downsample.0.weight (C, C_in, 1, 1), downsample.1.*; stride; training;
             shortcut - what to do when the shape changes and there is no projection:
             "A" pads with zeros, "B" (the default) requires the projection params
    Returns: (N, C, H / s, W / s)
    """
    out = torch.relu(_conv_bn(x, params, "conv1", "bn1", stride, 1, training))
    out = _conv_bn(out, params, "conv2", "bn2", 1, 1, training)  # F(x)
    c_out = params["conv2.weight"].shape[0]
    return torch.relu(out + _shortcut(x, params, stride, training, c_out, shortcut))


def bottleneck(x: torch.Tensor, params: dict, stride: int = 1, training: bool = True,
               stride_on: str = "3x3") -> torch.Tensor:
    """The three-layer bottleneck block of ResNet-50/101/152 (Fig. 5 right).

        F(x) = BN_3(W_3 * relu(BN_2(W_2 * relu(BN_1(W_1 * x)))))
        y    = relu(F(x) + shortcut(x))

    W_1 1x1 reduces to C channels, W_2 3x3, W_3 1x1 restores 4C. The stride sits on W_1
    (``stride_on="1x1"``, the paper) or on W_2 (``"3x3"``, torchvision; the default here
    because the tests compare with torchvision's block).

    Inputs:  x (N, C_in, H, W); params - torchvision Bottleneck state_dict keys: conv1.weight
             (C, C_in, 1, 1), conv2.weight (C, C, 3, 3), conv3.weight (4C, C, 1, 1), bn1..bn3,
             optional downsample.0.weight (4C, C_in, 1, 1) and downsample.1.*
    Returns: (N, 4C, H / s, W / s)
    """
    if stride_on not in ("1x1", "3x3"):
        raise ValueError(f"stride_on must be '1x1' or '3x3', got {stride_on!r}")
    s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
    out = torch.relu(_conv_bn(x, params, "conv1", "bn1", s1, 0, training))
    out = torch.relu(_conv_bn(out, params, "conv2", "bn2", s3, 1, training))
    out = _conv_bn(out, params, "conv3", "bn3", 1, 0, training)  # F(x)
    c_out = params["conv3.weight"].shape[0]
    return torch.relu(out + _shortcut(x, params, stride, training, c_out, "B"))


def _sub(params: dict, prefix: str) -> dict:
    """The entries of ``params`` under ``prefix.``, with the prefix removed."""
    return {k[len(prefix) + 1:]: v for k, v in params.items() if k.startswith(prefix + ".")}


# --------------------------------------------------------------------------------------
# 4. The CIFAR-10 ResNet (Section 4.2)
# --------------------------------------------------------------------------------------


class CifarResNet:
    """ResNet-(6n + 2) for 32x32 images: conv 3x3/16, three stages of n basic blocks with
    16, 32, 64 filters (the first block of stages 2 and 3 halves the size, option-A
    shortcut), global average pooling, a fully connected layer.

    ``params`` uses the names of ``05_ResNet.paper.resnet_paper.CifarResNet``'s state_dict
    (``conv1.weight``, ``layer2.0.bn1.running_var``, ``fc.weight`` ...), so the same
    weights can be loaded into either.

    Inputs (constructor): depth = 6n + 2; num_classes; seed (initial weights: He et al.
        2015b, N(0, 2 / (k k C_out)) for convolutions; U(-1/sqrt(64), 1/sqrt(64)) for fc);
        device; dtype
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, *, seed: int = 0,
                 device="cpu", dtype=torch.float32):
        if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), "
                             f"got {depth!r}")
        self.depth, self.n, self.num_classes = depth, (depth - 2) // 6, num_classes
        gen = torch.Generator().manual_seed(seed)
        p: dict[str, torch.Tensor] = {}

        def conv(name: str, c_out: int, c_in: int, k: int) -> None:
            std = math.sqrt(2.0 / (k * k * c_out))  # He et al. 2015b, fan_out
            p[f"{name}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * std

        def bn(name: str, c: int) -> None:
            p[f"{name}.weight"], p[f"{name}.bias"] = torch.ones(c), torch.zeros(c)
            p[f"{name}.running_mean"], p[f"{name}.running_var"] = torch.zeros(c), torch.ones(c)

        conv("conv1", 16, 3, 3)
        bn("bn1", 16)
        c_in = 16
        for stage, width in enumerate((16, 32, 64), start=1):
            for i in range(self.n):
                conv(f"layer{stage}.{i}.conv1", width, c_in, 3)
                bn(f"layer{stage}.{i}.bn1", width)
                conv(f"layer{stage}.{i}.conv2", width, width, 3)
                bn(f"layer{stage}.{i}.bn2", width)
                c_in = width
        bound = 1.0 / math.sqrt(64)  # PyTorch's default for a Linear with 64 inputs
        p["fc.weight"] = (torch.rand(num_classes, 64, generator=gen) * 2 - 1) * bound
        p["fc.bias"] = (torch.rand(num_classes, generator=gen) * 2 - 1) * bound
        self.params = {k: v.to(device=device, dtype=dtype) for k, v in p.items()}
        for k, v in self.params.items():
            v.requires_grad_(not k.endswith(("running_mean", "running_var")))

    def parameters(self) -> list[torch.Tensor]:
        """The trainable tensors (not the running statistics), in a fixed order."""
        return [v for v in self.params.values() if v.requires_grad]

    def load_state_dict(self, state: dict) -> None:
        """Copy values (e.g. an L3 CifarResNet's state_dict) into ``params``."""
        with torch.no_grad():
            for k, v in self.params.items():
                if k not in state:
                    raise KeyError(f"load_state_dict: {k!r} missing from the given state")
                v.copy_(state[k])

    def forward(self, x: torch.Tensor, training: bool = True) -> torch.Tensor:
        """x (N, 3, H, W) -> logits (N, num_classes)."""
        x = _check_images(x)
        if x.shape[1] != 3:
            raise ValueError(f"CifarResNet: expected (N, 3, H, W) images, got {tuple(x.shape)}")
        h = torch.relu(_conv_bn(x, self.params, "conv1", "bn1", 1, 1, training))  # (N,16,H,W)
        for stage in (1, 2, 3):
            for i in range(self.n):
                stride = 2 if stage > 1 and i == 0 else 1
                h = basic_block(h, _sub(self.params, f"layer{stage}.{i}"), stride, training,
                                shortcut="A")
        pooled = h.mean(dim=(2, 3))  # (N, 64): global average pooling
        return pooled @ self.params["fc.weight"].T + self.params["fc.bias"]  # (N, K)

    __call__ = forward

    def loss(self, x: torch.Tensor, y: torch.Tensor, training: bool = True) -> torch.Tensor:
        """Mean softmax cross-entropy: -1/N sum_n log softmax(z_n)[y_n]."""
        return cross_entropy(self.forward(x, training), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(N,) predicted classes, evaluation mode (running statistics)."""
        return torch.cat([self.forward(x[i:i + batch_size], training=False).argmax(1)
                          for i in range(0, x.shape[0], batch_size)])


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -log softmax(logits)[y].  logits (N, K), y (N,) int64 -> ()."""
    log_p = torch.log_softmax(logits, dim=1)  # (N, K), stable: logsumexp inside
    return -log_p.gather(1, y[:, None]).mean()


# --------------------------------------------------------------------------------------
# 5. SGD with momentum and weight decay, written out
# --------------------------------------------------------------------------------------


@torch.no_grad()  # the update must not become part of the autograd graph
def sgd_step(params: Sequence[torch.Tensor], lr: float, momentum: float = 0.9,
             weight_decay: float = 1e-4, state: dict | None = None) -> dict:
    """One step of ``torch.optim.SGD`` (dampening 0, no Nesterov), the paper's optimiser.

        g <- grad + weight_decay * p                 (L2 penalty weight_decay/2 ||p||^2)
        v <- g (first step),  v <- momentum v + g    (later steps)
        p <- p - lr v

    Inputs:  params (tensors with .grad; None grads skipped); lr > 0; momentum in [0, 1);
             weight_decay >= 0; state - the previous call's return value or None
    Returns: the state (momentum buffers by position) for the next call
    """
    if not lr > 0 or not 0 <= momentum < 1 or weight_decay < 0:
        raise ValueError(f"sgd_step: need lr > 0, 0 <= momentum < 1, weight_decay >= 0; got "
                         f"{lr}, {momentum}, {weight_decay}")
    state = {} if state is None else state
    for i, p in enumerate(params):
        if p.grad is None:
            continue
        g = p.grad + weight_decay * p if weight_decay else p.grad
        if momentum:
            if i not in state:
                state[i] = g.clone()
            else:
                state[i].mul_(momentum).add_(g)
            g = state[i]
        p.sub_(lr * g)
    return state


# --------------------------------------------------------------------------------------
# 6. Data: 32x32 colour images, per-pixel mean subtraction, crop + flip augmentation
# --------------------------------------------------------------------------------------


def digits_to_rgb(X: np.ndarray, size: int = 32) -> np.ndarray:
    """scikit-learn digits (N, 64), ink 0..16 -> (N, 3, size, size) in [0, 1].

    As lesson 03 enlarges them: each pixel becomes an s x s block with s = size / 8 - 1,
    centred in a field of background (size 32: 24x24 digits padded by 4, lesson 03's
    field; size 16: the 8x8 digit padded by 4, four times cheaper to train on), and the
    grey level is repeated in 3 channels so that the colour network takes it unchanged.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    if size < 16 or size % 8:
        raise ValueError(f"digits: size must be a multiple of 8, >= 16; got {size}")
    scale = size // 8 - 1
    pad = (size - 8 * scale) // 2
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8)
    images = images.repeat(scale, axis=2).repeat(scale, axis=3)  # (N, 1, 8s, 8s)
    images = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, 1, size, size)
    return np.repeat(images, 3, axis=1)  # (N, 3, size, size)


def load_images(dataset: str, data_root=None, digits_size: int = 32):
    """(X_train, y_train, X_test, y_test, classes, note): X float32 (N, 3, S, S) with the
    per-pixel mean of the training images subtracted (Section 4.2: "the per-pixel mean
    subtracted"), y int64; S = 32, or ``digits_size`` for digits. ``note`` is the data
    set's caveat (the CIFAR-10 subset's) or None. Raises DatasetNotFoundError when
    CIFAR-10 is not found."""
    if dataset == "digits":
        split = load_arrays("digits", standardize=False)
        X_train = digits_to_rgb(split.X_train, digits_size)
        X_test = digits_to_rgb(split.X_test, digits_size)
    elif dataset == "cifar10":
        split = load_arrays("cifar10", data_root=data_root)  # (N, 32, 32, 3) in [0, 1]
        X_train = np.ascontiguousarray(split.X_train.transpose(0, 3, 1, 2))  # (N, 3, 32, 32)
        X_test = np.ascontiguousarray(split.X_test.transpose(0, 3, 1, 2))
    else:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'digits' or 'cifar10'")
    mean = X_train.mean(axis=0, keepdims=True)  # (1, 3, S, S): per-pixel mean, train only
    classes = split.classes or [str(k) for k in range(10)]
    return (X_train - mean, split.y_train, X_test - mean, split.y_test, classes, split.note)


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Section 4.2's augmentation: pad 4 pixels on each side, take a random crop of the
    original size, flip it horizontally with probability 1/2. Each image draws its own.

    Inputs:  x (N, C, H, W); padding >= 0; flip; generator (None: torch's global one)
    Returns: (N, C, H, W), a new tensor
    """
    x = _check_images(x)
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (N, C, H + 2p, W + 2p)
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (top[:, None] + torch.arange(h)).to(x.device)  # (N, H): rows each image keeps
    cols = (left[:, None] + torch.arange(w)).to(x.device)  # (N, W)
    if flip:
        mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        cols = torch.where(mirror[:, None], cols.flip(1), cols)  # read the row right to left
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing with (N,1,1), (N,H,1), (N,1,W) index arrays puts those dims first
    crops = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N,H,W,C)
    return crops.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


# --------------------------------------------------------------------------------------
# 7. Training: the paper's schedule with the hand-written step
# --------------------------------------------------------------------------------------


def lr_milestones(epochs: int) -> list[int]:
    """The epochs at which the paper's schedule divides the learning rate by 10: at 50 %
    and at 75 % of training (32k and 48k of 64k iterations, Section 4.2). A milestone at
    epoch 0 is dropped (a run of one epoch keeps the base rate throughout)."""
    return [m for m in (epochs // 2, (3 * epochs) // 4) if m > 0]


def step_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of ``epoch`` (0-based): base_lr * 0.1 ** (milestones passed)."""
    return base_lr * 0.1 ** sum(epoch >= m for m in lr_milestones(epochs))


def train(model: CifarResNet, X: torch.Tensor, y: torch.Tensor, *, epochs: int,
          batch_size: int, lr: float, momentum: float = 0.9, weight_decay: float = 1e-4,
          augment: bool = False, seed: int = 0, progress: bool = False,
          log=None) -> dict[str, list[float]]:
    """Mini-batch SGD: zero grads -> loss -> backward -> sgd_step, per batch.

    Inputs:  model; X (N, 3, H, W) on the model's device; y (N,) int64; epochs; batch_size;
             lr (divided by 10 at 50 % and 75 % of the epochs); momentum; weight_decay;
             augment - random crop + flip each batch; seed - batch order and augmentation
    Returns: {"train_loss": mean loss of each epoch, "lr": learning rate of each epoch}
    """
    if not (isinstance(epochs, int) and epochs >= 1 and isinstance(batch_size, int)
            and batch_size >= 1):
        raise ValueError(f"epochs and batch_size must be positive ints, got {epochs!r}, "
                         f"{batch_size!r}")
    gen = torch.Generator().manual_seed(seed)
    params, state, n = model.parameters(), None, X.shape[0]
    history: dict[str, list[float]] = {"train_loss": [], "lr": []}
    for epoch in tqdm(range(epochs), desc="ResNet (L2)", disable=not progress, leave=False):
        eta = step_lr(lr, epoch, epochs)
        order = torch.randperm(n, generator=gen).to(X.device)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = order[start:start + batch_size]
            xb = random_crop_flip(X[rows], generator=gen) if augment else X[rows]
            for p in params:
                p.grad = None  # autograd adds into .grad: forget the last step's
            J = model.loss(xb, y[rows], training=True)
            J.backward()
            state = sgd_step(params, eta, momentum, weight_decay, state)
            total += float(J.detach()) * rows.shape[0]
        history["train_loss"].append(total / n)
        history["lr"].append(eta)
        if not math.isfinite(history["train_loss"][-1]):
            raise FloatingPointError(f"the loss became {history['train_loss'][-1]} in epoch "
                                     f"{epoch + 1}; try a smaller --lr")
        if log is not None:
            log(f"epoch {epoch + 1}/{epochs}  lr {eta:g}  train loss "
                f"{history['train_loss'][-1]:.4f}")
    return history


# --------------------------------------------------------------------------------------
# 8. The script
# --------------------------------------------------------------------------------------


DATASET_DEFAULTS = {
    "digits": {"depth": 8, "epochs": 3, "batch_size": 64, "lr": 0.1, "augment": False},
    "cifar10": {"depth": 20, "epochs": 10, "batch_size": 128, "lr": 0.1, "augment": True},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train the low-level CIFAR ResNet on digits (default) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (mean training loss of the
             last epoch), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="ResNet-(6n+2) of He et al. 2015, Section 4.2, in low-level PyTorch: "
                    "convolution by unfold + matmul, batch norm by hand, hand-written SGD "
                    f"with momentum and weight decay. Per-dataset defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/05_ResNet/l2_resnet")
    parser.add_argument("--depth", type=positive_int, default=None,
                        help="6n + 2: 8, 14, 20, ... (default: %(default)s)")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=1e-4,
                        help="default: %(default)s")
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="random crop (4-pixel padding) + horizontal flip (default: "
                             "%(default)s)")
    parser.add_argument("--digits-size", type=positive_int, default=16,
                        help="side of the digits images: 16 (fast, default) or 32 (lesson 03)")
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads, 0 = torch's default (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    if args.depth < 8 or (args.depth - 2) % 6:
        parser.error(f"argument --depth: expected 6n + 2 with n >= 1 (8, 14, 20, 32, ...), "
                     f"got {args.depth}")
    if args.digits_size < 16 or args.digits_size % 8:
        parser.error(f"argument --digits-size: expected a multiple of 8, >= 16, got "
                     f"{args.digits_size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    seed_everything(args.seed)
    device = get_device(args.device)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes, note = load_images(
            args.dataset, args.data_root, args.digits_size)
    print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
    if note:
        print(f"note: {note}")
    model = CifarResNet(args.depth, len(classes), seed=args.seed, device=device)
    print(f"ResNet-{args.depth} (L2): {sum(p.numel() for p in model.parameters()):,} "
          "trainable parameters")
    Xtr, Xte = torch.from_numpy(X_train).to(device), torch.from_numpy(X_test).to(device)
    ytr, yte = torch.from_numpy(y_train).to(device), torch.from_numpy(y_test).to(device)
    started = time.perf_counter()
    history = train(model, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                    lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                    augment=args.augment, seed=args.seed, progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    train_accuracy = float((model.predict(Xtr) == ytr).float().mean())
    predictions = model.predict(Xte)
    test_accuracy = float((predictions == yte).float().mean())
    final_loss = history["train_loss"][-1]
    print(f"ResNet-{args.depth} (L2) on {args.dataset}: train accuracy {train_accuracy:.4f}, "
          f"test accuracy {test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s "
          f"of training on {device}")
    title = f"L2 ResNet-{args.depth} on {args.dataset}" + (" subset" if note else "")
    plot_curves({"train loss": history["train_loss"]}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(y_test, predictions.cpu().numpy(), class_names=classes,
                          path=out / "confusion.png", title=f"{title} (test)")
    print(f"plots written to {out}")
    return {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
            "final_loss": final_loss, "train_seconds": seconds}


if __name__ == "__main__":
    main()
