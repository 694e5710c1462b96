"""ResNet from tensors and autograd: residual blocks and the CIFAR-10 network (Level 2, lesson 05).

He, Zhang, Ren & Sun (2015), "Deep Residual Learning for Image Recognition": a block
outputs y = relu(F(x) + shortcut(x)) (Section 3.2, eq. 1 and 2). ``basic_block`` and
``bottleneck`` (Fig. 5) are functions of a dict of tensors keyed by torchvision's
``state_dict`` names (``conv1.weight``, ``bn1.running_mean``, ``downsample.0.weight`` ...),
so a torchvision block's weights drop straight in; ``CifarResNet`` is the CIFAR-10 network
of Section 4.2 (6n + 2 layers, option-A shortcuts). The convolution (unfold + one matmul)
is lesson 03's, batch normalisation lesson 04's, the loss and the SGD step lesson 02's.
Autograd provides every backward pass: d(F(x) + x)/dx = dF/dx + I, so the gradient of
every block reaches its input at least through the identity (``../theory.md`` section 3).
``train.py`` beside this file trains it.
"""

from __future__ import annotations

import math

import torch

from utils import import_lesson

# Taught before and used as they are: lesson 03's convolution (no bias here: ResNet's
# convolutions have none, BN's beta plays that role), lesson 04's batch normalisation
# (PyTorch's running-statistics convention), lesson 02's cross-entropy and SGD step.
conv2d = import_lesson("03_CNN_LeNet.pytorch_lowlevel.lenet_lowlevel").conv2d
batch_norm = import_lesson("04_VGG.pytorch_lowlevel.vgg_lowlevel").batch_norm
_mlp = import_lesson("02_MLP.pytorch_lowlevel.mlp_lowlevel")
cross_entropy, zero_grad, sgd_step = _mlp.cross_entropy, _mlp.zero_grad, _mlp.sgd_step


def _conv_bn(x: torch.Tensor, params: dict, conv: str, bn: str, stride: int, padding: int,
             training: bool) -> torch.Tensor:
    """BN(W * x): "BN right after each convolution" (Section 3.4)."""
    y = conv2d(x, params[f"{conv}.weight"], stride=stride, padding=padding)  # no bias
    return batch_norm(y, params[f"{bn}.weight"], params[f"{bn}.bias"],
                      params[f"{bn}.running_mean"], params[f"{bn}.running_var"], training)


# --------------------------------------------------------------------------------------
# 1. Residual blocks (Section 3.2, Fig. 2 and Fig. 5)
# --------------------------------------------------------------------------------------


def shortcut_a(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """Option A (Section 3.3): subsample by ``stride`` and append zero channels.

    Inputs:  x (N, C, H, W); out_channels >= C; stride >= 1
    Returns: (N, out_channels, ceil(H / stride), ceil(W / stride)); [:, :C] = x[:, :, ::s, ::s]
    """
    x = x[:, :, ::stride, ::stride]  # (N, C, H/s, W/s)
    extra = out_channels - x.shape[1]  # >= 0: option A only adds channels
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
# 2. The CIFAR-10 ResNet (Section 4.2)
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
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"CifarResNet: expected (N, 3, H, W) images, got "
                             f"{tuple(getattr(x, 'shape', ())) or type(x).__name__}")
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
        """Mean softmax cross-entropy: -1/N sum_n log softmax(z_n)[y_n] (lesson 02's)."""
        return cross_entropy(self.forward(x, training), y)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """(N,) predicted classes, evaluation mode (running statistics)."""
        return torch.cat([self.forward(x[i:i + batch_size], training=False).argmax(1)
                          for i in range(0, x.shape[0], batch_size)])
