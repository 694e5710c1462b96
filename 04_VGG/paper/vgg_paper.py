"""VGG as Simonyan & Zisserman (2015) describe it: configurations A to E (Level 3 of lesson 04).

The paper
---------
K. Simonyan, A. Zisserman (2015), "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556). Section 2.1 fixes the building blocks, Table 1
the six configurations, Table 2 their parameter counts, Section 3.1 training and
initialisation, Section 3.2 testing (dense evaluation)::

    input 224 x 224 RGB, the mean RGB value subtracted
    conv3-C   3x3 convolution, stride 1, padding 1 (the spatial size is kept), C maps, ReLU
    conv1-C   1x1 convolution (configuration C only), ReLU
    maxpool   2x2 window, stride 2 (the size halves): five of them, 224 -> 7
    FC-4096, FC-4096, FC-1000 with ReLU, dropout 0.5 after the first two; soft-max

    config  weight layers   per stage (64, 128, 256, 512, 512 channels)   params (Table 2)
    A       11              1, 1, 2, 2, 2 conv3                           133 M
    A-LRN   11              A with local response normalisation after the 1st conv
    B       13              2, 2, 2, 2, 2 conv3                           133 M
    C       16              B + one conv1 in each of stages 3, 4, 5       134 M
    D       16              2, 2, 3, 3, 3 conv3     ("VGG-16")            138 M
    E       19              2, 2, 4, 4, 4 conv3     ("VGG-19")            144 M

Production layout
-----------------
We keep torchvision's module layout (``features`` / ``avgpool`` / ``classifier``, the same
indices inside each ``nn.Sequential``, ``nn.ReLU(inplace=True)``, the same op order), so
that a torchvision state dict loads into our model unchanged and the two run the same
kernels (the speed benchmark compares them). torchvision adds one module the paper does
not have: ``AdaptiveAvgPool2d((7, 7))`` between the convolutions and the classifier, which
is the identity on a 224 x 224 input (7 x 7 maps already) and lets other sizes through.
The paper instead evaluates images of any size *densely* (Section 3.2): the FC layers
become convolutions (FC6 a 7x7 conv, FC7 and FC8 1x1 convs), the network slides over
the whole image and the class score map is averaged: ``fully_convolutional``.

Batch normalisation (Ioffe & Szegedy 2015) came out after VGG; ``batch_norm=True`` puts a
``BatchNorm2d`` between each convolution and its ReLU, like torchvision's ``vgg*_bn``.

Initialisation (Section 3.1): configuration A was trained from weights drawn from a normal
distribution with zero mean and variance 10^-2 (biases zero); the deeper nets started
with their first four conv layers and last three FC layers copied from a trained A
(``init_from_shallower``, which says how we map the four layers), the others random.
The paper notes that after submission the authors found the Glorot & Bengio (2010)
initialisation trains the deep nets without that pre-training; it is our default
(``init="glorot"``).

CIFAR-sized VGG
---------------
``vgg_cifar`` keeps the convolutional stacks of a configuration (optionally narrower,
``width``) and applies them to 32 x 32 images: the five poolings take 32 -> 1, so the
classifier is a single ``Linear(512, num_classes)`` (the common CIFAR variant; not in the
paper, which only trained on ImageNet). Batch norm is on by default there: without it,
and without the paper's staged initialisation, the deeper configurations train poorly
from scratch.

Run it from the repository root::

    python 04_VGG/paper/vgg_paper.py                         # config A, digits, a few seconds
    python 04_VGG/paper/vgg_paper.py --dataset cifar10 --data-root /path/to/data --config D
    torchrun --nproc_per_node 2 04_VGG/paper/vgg_paper.py --device cpu
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

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
from utils.data_loaders import load_arrays, to_tensor_dataset
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    make_lr_scheduler,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_confusion_matrix, plot_curves, plot_feature_maps

# --------------------------------------------------------------------------------------
# 1. Table 1: the configurations
# --------------------------------------------------------------------------------------

# An int C is a conv3-C (3x3, padding 1), ("conv1", C) a conv1-C (1x1, configuration C),
# "M" a 2x2 max-pooling with stride 2, "LRN" local response normalisation (A-LRN).
CONFIGS: dict[str, list] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, ("conv1", 256), "M",
          512, 512, ("conv1", 512), "M", 512, 512, ("conv1", 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}
# Configurations that torchvision also builds (vgg11 = A, vgg13 = B, vgg16 = D, vgg19 = E)
TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
INITS = ("glorot", "paper", "torchvision")
PAPER_INIT_STD = 0.1  # Section 3.1: "zero mean and 10^-2 variance", std = sqrt(1e-2)


def _check_config(config: str) -> list:
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)} (Table 1), got {config!r}")
    return CONFIGS[config]


def local_response_norm() -> nn.LocalResponseNorm:
    """LRN with Krizhevsky et al.'s (2012) constants, as the paper's A-LRN uses it.

        b_c = a_c / (k + alpha/n * sum_{c' within n/2 of c} a_{c'}^2)^beta,
        n = 5, alpha = 1e-4, beta = 0.75, k = 2

    Note: PyTorch (like Caffe) divides alpha by the window size n; Krizhevsky's formula
    has alpha alone (theory.md section 4).
    """
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def make_features(config: str, batch_norm: bool = False, in_channels: int = 3,
                  width: int = 64) -> nn.Sequential:
    """The convolutional part of a configuration, in torchvision's order and indices.

    Each conv3 (or conv1) becomes Conv2d [-> BatchNorm2d] -> ReLU(inplace=True); each "M" a
    MaxPool2d(2, 2); "LRN" a LocalResponseNorm after the preceding ReLU.

    Inputs:  config - "A", "A-LRN", "B", "C", "D" or "E"; width - channels of the first
             stage (64 in the paper); the later stages have 2, 4, 8 and 8 times as many
    Returns: nn.Sequential mapping (N, in_channels, H, W) -> (N, 8*width, H/32, W/32)
    """
    layers: list[nn.Module] = []
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width must be a positive int (64 in the paper), got {width!r}")
    channels = in_channels
    for item in _check_config(config):
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif item == "LRN":
            layers.append(local_response_norm())
        else:
            kernel, out = (1, item[1]) if isinstance(item, tuple) else (3, item)
            out = max(1, out * width // 64)
            # padding k // 2 keeps the size: 1 for conv3 (Section 2.1), 0 for conv1
            layers.append(nn.Conv2d(channels, out, kernel_size=kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------
# 2. The network
# --------------------------------------------------------------------------------------


class VGG(nn.Module):
    """A VGG configuration of Table 1 with torchvision's layout.

    features   the conv stacks and 5 max-poolings: (N, 3, 224, 224) -> (N, 512, 7, 7)
    avgpool    AdaptiveAvgPool2d((pool_size, pool_size)): identity at 224 x 224
    classifier FC-hidden, ReLU, Dropout, FC-hidden, ReLU, Dropout, FC-num_classes
               (hidden=None: a single Linear, the CIFAR variant)

    Inputs of forward: x (N, in_channels, H, W) float, H and W >= 32 (five halvings)
    Returns: logits (N, num_classes); the soft-max lives in the loss (cross-entropy)
    """

    def __init__(self, config: str = "D", num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5, *, in_channels: int = 3, width: int = 64,
                 hidden: int | None = 4096, pool_size: int = 7, init: str = "glorot"):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not (isinstance(num_classes, int) and num_classes >= 1):
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.config, self.batch_norm, self.in_channels = config, batch_norm, in_channels
        self.features = make_features(config, batch_norm, in_channels, width)
        channels = max(1, 512 * width // 64)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        flat = channels * pool_size * pool_size  # 512 * 7 * 7 = 25,088 inputs of FC6
        if hidden is None:
            self.classifier: nn.Module = nn.Linear(flat, num_classes)
        else:
            self.classifier = nn.Sequential(
                nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
                nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
                nn.Linear(hidden, num_classes),
            )
        self.reset_parameters(init)

    def reset_parameters(self, init: str = "glorot") -> None:
        """Initialise every layer; see the module docstring (Section 3.1).

        "glorot"      Glorot & Bengio uniform, U(-a, a), a = sqrt(6 / (fan_in + fan_out));
                      the paper's post-submission note; biases 0
        "paper"       N(0, 10^-2) for every weight (std 0.1), biases 0: the procedure the
                      paper used for configuration A
        "torchvision" Kaiming normal (fan_out, ReLU) for convolutions, N(0, 0.01^2) for the
                      linear layers, biases 0 (what torchvision's VGG does)
        Batch norm starts as the identity: gamma 1, beta 0.
        """
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init == "glorot":
                    nn.init.xavier_uniform_(m.weight)
                elif init == "paper":
                    nn.init.normal_(m.weight, 0.0, PAPER_INIT_STD)
                elif isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"VGG: expected images of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        if min(x.shape[2:]) < 32:
            raise ValueError(f"VGG: five 2x2 poolings need H, W >= 32, got {tuple(x.shape[2:])}")
        x = self.features(x)  # (N, 512, H/32, W/32)
        x = self.avgpool(x)  # (N, 512, 7, 7)
        x = torch.flatten(x, 1)  # (N, 25088)
        return self.classifier(x)

    def feature_maps(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The output of every pooling stage ("pool1" .. "pool5") and of each stage's last
        ReLU ("stage1" .. "stage5"), for pictures. Runs without autograd; x (N, C, H, W)."""
        maps, stage, last_relu = {}, 1, None
        with torch.no_grad():
            for layer in self.features:
                x = layer(x)
                if isinstance(layer, nn.ReLU):
                    last_relu = x.clone()  # the ReLU works in place: keep a copy
                elif isinstance(layer, nn.MaxPool2d):
                    maps[f"stage{stage}"], maps[f"pool{stage}"] = last_relu, x
                    stage += 1
        return maps


def vgg(config: str, num_classes: int = 1000, batch_norm: bool = False,
        dropout: float = 0.5, *, init: str = "glorot") -> VGG:
    """The ImageNet network of ``config`` ("A", "A-LRN", "B", "C", "D", "E"), Table 1."""
    return VGG(config, num_classes, batch_norm, dropout, init=init)


def vgg11(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, *,
          init: str = "glorot") -> VGG:
    """Configuration A, 11 weight layers (torchvision's vgg11 / vgg11_bn layout)."""
    return VGG("A", num_classes, batch_norm, dropout, init=init)


def vgg13(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, *,
          init: str = "glorot") -> VGG:
    """Configuration B, 13 weight layers."""
    return VGG("B", num_classes, batch_norm, dropout, init=init)


def vgg16(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, *,
          init: str = "glorot") -> VGG:
    """Configuration D, 16 weight layers, the network usually called VGG-16."""
    return VGG("D", num_classes, batch_norm, dropout, init=init)


def vgg19(num_classes: int = 1000, batch_norm: bool = False, dropout: float = 0.5, *,
          init: str = "glorot") -> VGG:
    """Configuration E, 19 weight layers."""
    return VGG("E", num_classes, batch_norm, dropout, init=init)


def vgg_cifar(config: str = "A", num_classes: int = 10, batch_norm: bool = True,
              width: int = 64, *, in_channels: int = 3, init: str = "glorot") -> VGG:
    """A configuration's conv stacks on 32 x 32 images, and one Linear(8*width, num_classes).

    The five poolings take 32 -> 1, so the "avgpool" is AdaptiveAvgPool2d((1, 1)) (the
    identity at 32 x 32) and there is no FC-4096 pair (they would hold most of the
    parameters and overfit 50,000 small images). width=64 gives the paper's channels.
    """
    return VGG(config, num_classes, batch_norm, 0.0, in_channels=in_channels, width=width,
               hidden=None, pool_size=1, init=init)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (batch-norm running statistics are buffers: not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _convs_by_position(model: VGG) -> dict[tuple[int, int], nn.Conv2d]:
    """{(stage, index within the stage): conv layer}, stages and indices counted from 1."""
    out, stage, index = {}, 1, 0
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            index += 1
            out[(stage, index)] = m
        elif isinstance(m, nn.MaxPool2d):
            stage, index = stage + 1, 0
    return out


def init_from_shallower(deep: VGG, shallow: VGG) -> VGG:
    """Section 3.1: start a deeper net from a trained shallower one (A in the paper), in place.

    The paper copies "the first four convolutional layers and the last three fully-connected
    layers" of net A; the layers in between stay random. A's first four conv layers are
    conv1_1 (3 -> 64), conv2_1 (64 -> 128), conv3_1 (128 -> 256), conv3_2 (256 -> 256);
    in a deeper net only the layers at the same (stage, position) have those shapes, so we
    copy A's conv layers into the deep net's conv1_1, conv2_1, conv3_1, conv3_2 (our
    reading: the paper does not spell the mapping out), and the three FC layers.
    Returns: ``deep``
    """
    deep_convs, shallow_convs = _convs_by_position(deep), _convs_by_position(shallow)
    deep_fc = [m for m in deep.classifier.modules() if isinstance(m, nn.Linear)]
    shallow_fc = [m for m in shallow.classifier.modules() if isinstance(m, nn.Linear)]
    if len(deep_fc) != 3 or len(shallow_fc) != 3:
        raise ValueError("init_from_shallower: both nets need the three FC layers of Table 1")
    first_four = list(shallow_convs)[:4]  # (1, 1), (2, 1), (3, 1), (3, 2) for A
    pairs = [(deep_convs[key], shallow_convs[key]) for key in first_four]
    pairs += list(zip(deep_fc, shallow_fc))
    with torch.no_grad():
        for target, source in pairs:
            if target.weight.shape != source.weight.shape:
                raise ValueError(f"init_from_shallower: shapes differ, "
                                 f"{tuple(target.weight.shape)} vs {tuple(source.weight.shape)}")
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
    return deep


# --------------------------------------------------------------------------------------
# 3. Dense evaluation (Section 3.2): the FC layers as convolutions
# --------------------------------------------------------------------------------------


class DenseVGG(nn.Module):
    """A VGG whose FC layers are convolutions: it takes images of any size >= 224.

    head: FC6 as Conv2d(512, 4096, 7), FC7 as Conv2d(4096, 4096, 1), FC8 as
    Conv2d(4096, K, 1) (ReLU and dropout as before). On an H x W image it gives a class
    score map of (H/32 - 6) x (W/32 - 6) positions, which is averaged (Section 3.2: the
    map is "spatially averaged (sum-pooled)") into one score vector per image.

    forward(x (N, 3, H, W), return_map=False) -> (N, K), or the map (N, K, H', W')
    """

    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor, return_map: bool = False) -> torch.Tensor:
        scores = self.head(self.features(x))  # (N, K, H', W')
        return scores if return_map else scores.mean(dim=(2, 3))  # (N, K)


def fully_convolutional(model: VGG) -> DenseVGG:
    """Turn ``model``'s FC layers into convolutions that hold the same weights (a copy).

    FC6's weight (4096, 512*7*7) reshaped to (4096, 512, 7, 7) is a 7x7 convolution: the
    flatten order of (C, 7, 7) is exactly the order of a conv kernel's entries. The next
    FCs are 1x1 convolutions. On a 224 x 224 input the result equals ``model(x)``.
    """
    if not isinstance(model, VGG):
        raise TypeError(f"fully_convolutional: expected a VGG, got {type(model).__name__}")
    pool = model.avgpool.output_size
    pool = pool if isinstance(pool, int) else pool[0]
    layers: list[nn.Module] = []
    modules = [model.classifier] if isinstance(model.classifier, nn.Linear) else model.classifier
    first = True
    for m in modules:
        if isinstance(m, nn.Linear):
            k = pool if first else 1
            conv = nn.Conv2d(m.in_features // (k * k), m.out_features, kernel_size=k)
            with torch.no_grad():
                conv.weight.copy_(m.weight.reshape(conv.weight.shape))  # (out, C, k, k)
                conv.bias.copy_(m.bias)
            layers.append(conv)
            first = False
        elif isinstance(m, nn.ReLU):
            layers.append(nn.ReLU(inplace=True))
        elif isinstance(m, nn.Dropout):
            layers.append(nn.Dropout(m.p))
        else:
            raise TypeError(f"fully_convolutional: unexpected layer {m!r} in the classifier")
    dense = DenseVGG(copy.deepcopy(model.features), nn.Sequential(*layers))  # own weights
    p = next(model.parameters())
    return dense.to(device=p.device, dtype=p.dtype).train(model.training)


# --------------------------------------------------------------------------------------
# 4. Conversion to and from torchvision
# --------------------------------------------------------------------------------------


def _config_from_layers(features: nn.Sequential) -> tuple[str, bool]:
    """(config name, batch_norm) of a torchvision ``features`` stack."""
    plan: list = []
    batch_norm = False
    for m in features:
        if isinstance(m, nn.Conv2d):
            if m.kernel_size != (3, 3):
                plan.append(("conv1", m.out_channels))
            else:
                plan.append(m.out_channels)
        elif isinstance(m, nn.MaxPool2d):
            plan.append("M")
        elif isinstance(m, nn.BatchNorm2d):
            batch_norm = True
        elif isinstance(m, nn.LocalResponseNorm):
            plan.append("LRN")
    for name, layers in CONFIGS.items():
        if layers == plan:
            return name, batch_norm
    raise ValueError(f"the features stack {plan} matches none of Table 1's configurations")


def from_torchvision(tv_model: nn.Module) -> VGG:
    """Our VGG holding a copy of a torchvision VGG's weights (and batch-norm statistics).

    Inputs:  tv_model - torchvision.models.VGG (vgg11/13/16/19, with or without _bn)
    Returns: VGG with the same layout, config, num_classes and dropout; same train/eval mode
    """
    from torchvision.models import VGG as TorchvisionVGG

    if not isinstance(tv_model, TorchvisionVGG):
        raise TypeError(f"from_torchvision: expected a torchvision.models.VGG, got "
                        f"{type(tv_model).__name__}")
    config, batch_norm = _config_from_layers(tv_model.features)
    dropout = next(m.p for m in tv_model.classifier if isinstance(m, nn.Dropout))
    num_classes = tv_model.classifier[-1].out_features
    with torch.device("meta"):  # no time spent initialising weights about to be replaced
        model = VGG(config, num_classes, batch_norm, dropout)
    state = {k: v.detach().clone() for k, v in tv_model.state_dict().items()}
    model.load_state_dict(state, assign=True)  # same keys: features.0.weight, ...
    return model.train(tv_model.training)


def to_torchvision(model: VGG) -> nn.Module:
    """A torchvision.models.VGG holding a copy of our weights (configs A, B, D, E).

    Configurations C and A-LRN have no torchvision counterpart (ValueError); neither has
    the CIFAR variant (a single Linear classifier) nor a narrowed ``width``.
    """
    from torchvision.models import vgg as tv_vgg

    if not isinstance(model, VGG):
        raise TypeError(f"to_torchvision: expected a VGG, got {type(model).__name__}")
    if model.config not in TORCHVISION_NAMES:
        raise ValueError(f"to_torchvision: configuration {model.config!r} has no torchvision "
                         f"equivalent (torchvision builds {sorted(TORCHVISION_NAMES)} only)")
    if not isinstance(model.classifier, nn.Sequential) or model.in_channels != 3:
        raise ValueError("to_torchvision: only the ImageNet layout (3 input channels, "
                         "FC-4096 x 2) converts; the CIFAR variant does not")
    dropout = next(m.p for m in model.classifier if isinstance(m, nn.Dropout))
    num_classes = model.classifier[-1].out_features
    layers = tv_vgg.cfgs[model.config]  # torchvision names them "A", "B", "D", "E" too
    with torch.device("meta"):
        tv_model = tv_vgg.VGG(tv_vgg.make_layers(layers, batch_norm=model.batch_norm),
                              num_classes=num_classes, init_weights=False, dropout=dropout)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        tv_model.load_state_dict(state, assign=True)
    except RuntimeError as err:
        raise ValueError(f"to_torchvision: the weights do not fit torchvision's {layers} "
                         f"(a narrowed width?): {err}") from None
    return tv_model.train(model.training)


# --------------------------------------------------------------------------------------
# 5. Receptive fields of stacked 3x3 convolutions (Section 2.3)
# --------------------------------------------------------------------------------------


def receptive_fields(config: str) -> list[tuple[str, int, int]]:
    """Receptive field r and jump j after every conv and pooling layer of ``config``.

        r_l = r_{l-1} + (k_l - 1) j_{l-1},   j_l = j_{l-1} s_l,   r_0 = 1, j_0 = 1

    (k kernel size, s stride; a conv3 adds 2 j, a conv1 adds nothing, a 2x2/2 pooling adds
    j and doubles j). Two stacked conv3 see 5x5, three see 7x7 (Section 2.3).

    Returns: [(layer name, r, j), ...], names like "conv3_2" and "pool3" (stage_index)
    """
    out, r, j, stage, index = [], 1, 1, 1, 0
    for item in _check_config(config):
        if item == "LRN":
            continue  # across channels only: the spatial field is unchanged
        if item == "M":
            r, j = r + (2 - 1) * j, j * 2
            out.append((f"pool{stage}", r, j))
            stage, index = stage + 1, 0
        else:
            kernel = 1 if isinstance(item, tuple) else 3
            r += (kernel - 1) * j
            index += 1
            out.append((f"conv{stage}_{index}", r, j))
    return out


def empirical_receptive_fields(config: str, size: int | None = None) -> list[tuple[str, int]]:
    """The receptive fields of ``receptive_fields(config)``, measured with autograd.

    A one-channel copy of the layer stack with every conv weight 1 and 2x2 average pooling
    in place of max pooling (the same geometry; max pooling would send the gradient to
    one pixel per window and hide the field), in float64. For the middle unit of each
    layer's output, the input pixels with a non-zero gradient d unit / d x form a square;
    its side is the receptive field.

    Returns: [(layer name, measured side), ...] in the order of ``receptive_fields``
    """
    plan = [item for item in _check_config(config) if item != "LRN"]
    size = size or 32 * 12  # large enough that the middle unit's field never hits a border
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    names = [name for name, _, _ in receptive_fields(config)]
    measured, h = [], x
    for name, item in zip(names, plan):
        if item == "M":
            h = torch.nn.functional.avg_pool2d(h, 2)
        else:
            k = 1 if isinstance(item, tuple) else 3
            w = torch.ones(1, 1, k, k, dtype=torch.float64)
            h = torch.nn.functional.conv2d(h, w, padding=k // 2)
        mid = h.shape[2] // 2
        (grad,) = torch.autograd.grad(h[0, 0, mid, mid], x, retain_graph=True)
        rows = torch.nonzero(grad[0, 0].abs().sum(1)).flatten()
        cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
        if rows[0] == 0 or rows[-1] == size - 1:
            raise ValueError(f"empirical_receptive_fields: the field of {name} touches the "
                             f"border of a {size}x{size} input; pass a larger size")
        side = int(rows[-1] - rows[0] + 1)
        if side != int(cols[-1] - cols[0] + 1):
            raise AssertionError(f"{name}: the field is not square")
        measured.append((name, side))
    return measured


def plot_receptive_fields(config: str, path) -> None:
    """Receptive-field size per layer of ``config``: the formula and the autograd test."""
    from matplotlib.figure import Figure

    from utils.visualization import save_figure

    table = receptive_fields(config)
    measured = empirical_receptive_fields(config)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(len(table))
    ax.plot(positions, [r for _, r, _ in table], "o-", label="formula r_l = r_(l-1) + (k-1) j")
    ax.plot(positions, [m for _, m in measured], "x", markersize=10,
            label="measured: support of d unit / d input")
    ax.set_xticks(positions, [name for name, _, _ in table], rotation=60, fontsize=8)
    ax.set_ylabel("receptive field (pixels, one side)")
    ax.set_title(f"VGG configuration {config}: receptive field after each layer")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


# --------------------------------------------------------------------------------------
# 6. Data and augmentation
# --------------------------------------------------------------------------------------


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard CIFAR augmentation on a batch: pad by ``padding`` zeros, crop a random
    H x W window, and mirror left-right with probability 1/2, independently per image.

    Inputs:  x (N, C, H, W) float (already normalised: the zero padding is the mean colour)
    Returns: (N, C, H, W), a new tensor
    """
    if x.ndim != 4:
        raise ValueError(f"random_crop_flip: expected (N, C, H, W), got {tuple(x.shape)}")
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)).to(x.device)  # (N, H) rows each image keeps
    cols = (dx[:, None] + torch.arange(w)).to(x.device)  # (N, W)
    if flip:
        mirrored = torch.rand(n, generator=generator).to(x.device) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)  # read the columns backwards
    batch = torch.arange(n, device=x.device)[:, None, None]
    # advanced indexing (N,1,1), :, (N,H,1), (N,1,W) -> (N, H, W, C)
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)


class AugmentingCollate:
    """A DataLoader ``collate_fn``: stack the samples, then ``random_crop_flip`` them.

    It owns a seeded torch.Generator, so runs with the same seed see the same crops, and
    the training loop (``fit``) and torchrun keep working unchanged.
    """

    def __init__(self, padding: int = 4, flip: bool = True, seed: int = 0):
        self.padding, self.flip = padding, flip
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, samples):
        x = torch.stack([s[0] for s in samples])  # (B, C, H, W)
        y = torch.stack([s[1] for s in samples])  # (B,)
        if self.padding or self.flip:
            x = random_crop_flip(x, self.padding, self.flip, self.generator)
        return x, y


def digits_to_rgb32(X: np.ndarray) -> np.ndarray:
    """scikit-learn digits (N, 64), ink 0..16 -> (N, 3, 32, 32) ink in [0, 1].

    As in lesson 03: nearest-neighbour upsampling x3 (24x24), 4 pixels of background on
    every side (32x32); then the grey image copied into three channels (VGG takes RGB).
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != 64:
        raise ValueError(f"digits: expected (N, 64) pixel rows, got shape {X.shape}")
    images = (X / np.float32(16.0)).reshape(-1, 1, 8, 8)
    images = images.repeat(3, axis=2).repeat(3, axis=3)  # (N, 1, 24, 24)
    images = np.pad(images, ((0, 0), (0, 0), (4, 4), (4, 4)))  # (N, 1, 32, 32)
    return np.repeat(images, 3, axis=1)  # (N, 3, 32, 32)


def load_images(dataset: str, data_root=None):
    """(X_train, y_train, X_test, y_test, class_names, note), X float32 (N, 3, 32, 32),
    each channel standardised with the training set's mean and standard deviation (the
    paper subtracts the mean RGB value, Section 2.1). note: the Split's warning or None.
    Raises DatasetNotFoundError (CIFAR-10 without a local copy nor network)."""
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
# 7. Training and the script
# --------------------------------------------------------------------------------------


def train(model: nn.Module, X, y, *, lr: float, epochs: int, batch_size: int,
          momentum: float = 0.9, weight_decay: float = 5e-4, augment: str = "crop-flip",
          schedule: str = "cosine", seed: int = 0, device="cpu", val: tuple | None = None,
          progress: bool = False, log=None) -> History:
    """SGD with momentum and weight decay (Section 3.1: momentum 0.9, weight decay 5e-4),
    softmax cross-entropy, a learning-rate schedule, augmentation, the shared ``fit``.

    Inputs:  X (N, 3, 32, 32) float32 array; y (N,) int labels; augment "none", "crop"
             (random 32x32 crop of the image padded by 4) or "crop-flip" (and mirroring);
             val - optional (X_val, y_val) evaluated after every epoch
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    collate = AugmentingCollate(padding=0 if augment == "none" else 4,
                                flip=augment == "crop-flip", seed=seed)
    loader = DataLoader(to_tensor_dataset(X, y), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), collate_fn=collate)
    val_loader = None
    if val is not None:
        val_loader = DataLoader(to_tensor_dataset(*val), batch_size=500, shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    scheduler = make_lr_scheduler(opt, schedule, epochs=epochs)
    return fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


@torch.no_grad()
def predict(model: nn.Module, X, batch_size: int = 500) -> np.ndarray:
    """Predicted classes (N,) int64 for images X (N, 3, H, W), in batches, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    X = torch.as_tensor(X)
    out = [model(X[i:i + batch_size].to(device)).argmax(1).cpu()
           for i in range(0, X.shape[0], batch_size)]
    return torch.cat(out).numpy()


AUGMENTS = ("none", "crop", "crop-flip")
DATASET_DEFAULTS = {
    # digits are not mirror-symmetric: crop only
    "digits": {"epochs": 6, "batch_size": 64, "lr": 0.05, "width": 8, "augment": "crop"},
    "cifar10": {"epochs": 10, "batch_size": 64, "lr": 0.05, "width": 16,
                "augment": "crop-flip"},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a CIFAR-sized VGG on digits (default, offline) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (training loss in eval mode
             over the whole training set, without augmentation), "train_seconds"}
    """
    table = "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in d.items())
                      for name, d in DATASET_DEFAULTS.items())
    parser = argparse.ArgumentParser(
        description="A VGG configuration (Simonyan & Zisserman 2015, Table 1) on 32x32 images, "
                    "SGD with momentum and weight decay, random crops (and flips). torch.optim "
                    f"+ the shared loop; torchrun works. Per-dataset defaults: {table}.")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/04_VGG/l3_vgg")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="A")
    parser.add_argument("--width", type=positive_int, default=None,
                        help="channels of the first stage (the paper: 64; default: "
                             "%(default)s)")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--augment", choices=AUGMENTS, default=None,
                        help="default: %(default)s")
    parser.add_argument("--momentum", type=probability, default=0.9,
                        help="SGD momentum, in [0, 1) (default: %(default)s)")
    parser.add_argument("--weight-decay", type=non_negative_float, default=5e-4,
                        help="default: %(default)s")
    parser.add_argument("--init", choices=INITS, default="glorot")
    parser.add_argument("--schedule", default="cosine", choices=("none", "step", "cosine"))
    parser.add_argument("--threads", type=non_negative_int, default=1,
                        help="torch CPU threads, 0 = torch's default (default: %(default)s)")
    args = parse_args(parser, argv, DATASET_DEFAULTS)
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes, note = load_images(args.dataset,
                                                                      args.data_root)
    if note:  # the 4k / 1k CIFAR-10 subset: say so wherever a result is shown
        args.dataset_label = f"{args.dataset} subset ({len(y_train)}/{len(y_test)})"
    else:
        args.dataset_label = args.dataset
    if is_main_process():
        print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
        if note:
            print(f"note: {note}")
    model = vgg_cifar(args.config, num_classes=len(classes), batch_norm=args.batch_norm,
                      width=args.width, init=args.init)
    name = f"VGG-{args.config} (CIFAR variant, width {args.width}" + \
        (", batch norm)" if args.batch_norm else ")")
    if is_main_process():
        print(f"{name}: {count_parameters(model):,} trainable parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, augment=args.augment,
                    schedule=args.schedule, seed=args.seed, device=device,
                    val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started

    train_eval = DataLoader(to_tensor_dataset(X_train, y_train), batch_size=500)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=nn.CrossEntropyLoss(),
                                          device=device)
    predictions = predict(model, X_test)
    test_accuracy = float(np.mean(predictions == y_test))
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset_label}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f}, final loss {final_loss:.4f}, {seconds:.1f} s of training on "
          f"{device}" + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, predictions, classes, out, name)
    cleanup_distributed()
    return metrics


def _plots(model, history: History, args, X_test, y_test, predictions, classes, out,
           name: str) -> None:
    """Loss curves, confusion matrix, feature maps at three depths, receptive fields."""
    title = f"L3 {name} on {args.dataset_label}"
    plot_curves({"train loss (mean over each epoch, augmented)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_confusion_matrix(y_test, predictions, class_names=classes, path=out / "confusion.png",
                          title=f"{title} (test)")
    device = next(model.parameters()).device
    model.eval()
    maps = model.feature_maps(torch.as_tensor(X_test[:1]).to(device))
    for stage in (1, 3, 5):
        plot_feature_maps(maps[f"stage{stage}"][0].cpu(), ncols=8,
                          path=out / f"feature_maps_stage{stage}.png",
                          title=f"{title}: stage {stage} maps of one test image "
                                f"({classes[int(y_test[0])]}), "
                                f"{tuple(maps[f'stage{stage}'].shape[2:])}")
    plot_receptive_fields("D", out / "receptive_field_D.png")
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
