"""VGG in low-level PyTorch: the CIFAR-sized VGG from tensor ops, batch norm by hand (Level 2).

A VGG (Simonyan & Zisserman 2015, Section 2.1) is made of 3x3 convolutions with ReLU and
2x2 max pooling, here lesson 03's unfold + matmul ``conv2d`` and ``max_pool2d`` (imported),
and, since Ioffe & Szegedy (2015), batch normalisation, written here with its running
statistics. The network is the Level 3 file's ``vgg_cifar``: the conv stacks of a
configuration of Table 1, five poolings taking 32 x 32 to 1 x 1, one linear layer; its
parameters are plain tensors named like L3's ``state_dict()`` keys, so weights copy across
unchanged. New at this level too: the strided view behind every window
(``windows_as_strided``). No ``torch.nn`` layers, no ``F.conv2d`` / ``F.*pool*`` /
``F.batch_norm``, no ``torch.optim`` (a test checks it). Derivations: ``../theory.md``
(sections 1, 6 and 11); ``train.py`` beside this file trains it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from utils import import_lesson

# Taught before and used as they are: lesson 03's convolution (unfold + one matmul) and
# max pooling (first maximum wins ties), and its unfold view of the windows; lesson 02's
# cross-entropy from logits and its hand-written SGD step (torch.optim.SGD's rule).
_lenet = import_lesson("03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel")
conv2d, max_pool2d, extract_patches = _lenet.conv2d, _lenet.max_pool2d, _lenet.extract_patches
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
cross_entropy, zero_grad, sgd_step = _mlp.cross_entropy, _mlp.zero_grad, _mlp.sgd_step

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
# 1. The check at the door of the functions and the network below
# --------------------------------------------------------------------------------------


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------
# 2. Windows as a strided view (the layers use lesson 03's unfold view: the same windows)
# --------------------------------------------------------------------------------------


def windows_as_strided(x: torch.Tensor, kernel_size: int, stride: int = 1) -> torch.Tensor:
    """Every k x k window of x, ``stride`` apart, as a strided view (no copy).

    Moving one output row (i -> i + 1) skips s rows of x; moving one kernel row (p -> p + 1)
    skips one row. Lesson 03's ``extract_patches`` builds exactly this view with
    ``Tensor.unfold``, one axis at a time; its backward pass knows the windows form a
    regular grid and runs about a third faster than the general as_strided backward (we
    measured 0.70 s against 1.10 s for ten 3x3 convolutions of a (64, 8, 32, 32) batch,
    forward and backward), so the layers (lesson 03's ``conv2d`` and ``max_pool2d``) use
    it. A test checks the two views are equal.

    Inputs:  x (N, C, H, W) float (made contiguous first if it is not); kernel_size k <= H, W
    Returns: (N, C, H_out, W_out, k, k), H_out = (H - k) // stride + 1; entry
             [n, c, i, j, p, q] is x[n, c, i*stride + p, j*stride + q]
    """
    x = x.contiguous()  # (N, C, H, W): the strides below assume the C order
    k = _positive_int(kernel_size, "kernel_size")
    s = _positive_int(stride, "stride")
    n, c, h, w = x.shape
    if h < k or w < k:
        raise ValueError(f"kernel {k}x{k} is larger than the (padded) input {h}x{w}")
    h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
    sn, sc, sh, sw = x.stride()  # (C*H*W, H*W, W, 1) for a contiguous x
    return x.as_strided((n, c, h_out, w_out, k, k), (sn, sc, s * sh, s * sw, sh, sw))


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
    c = x.shape[1]
    for name, t in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},), got {tuple(t.shape)}")
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
# 4. The linear layer (the loss is lesson 02's cross_entropy)
# --------------------------------------------------------------------------------------


def linear(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """y = x W^T + b with W (D_out, D_in) stored like torch's nn.Linear (so weights copy
    from the Level 3 model unchanged). Inputs: x (N, D_in); Returns: (N, D_out)."""
    return x @ W.T + b


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
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < 32:
            raise ValueError(f"VGGLowLevel: expected images (N, {self.in_channels}, H, W) with "
                             f"H, W >= 32, got {tuple(x.shape)}")  # conv2d checks the dtype
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
                x = torch.relu(x)
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
        return cross_entropy(self.forward(x), y)

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
