"""VGG as Simonyan & Zisserman (2015) describe it: configurations A to E (Level 3 of lesson 04).

K. Simonyan, A. Zisserman (2015), "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556): Section 2.1 fixes the building blocks (3x3
convolutions with stride 1 and padding 1, ReLU, 2x2 max pooling with stride 2, three FC
layers), Table 1 the six configurations, Table 2 their parameter counts, Section 3.1
training and initialisation, Section 3.2 dense evaluation. ``VGG`` keeps torchvision's
module layout (where we depart from the paper: its docstring); ``vgg_cifar`` is the
32 x 32 variant the script trains. Derivations and tables: ``../theory.md``; porting
weights to and from torchvision: ``convert.py``; training: ``python 04_VGG/paper/train.py``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

# --------------------------------------------------------------------------------------
# 1. Table 1: the configurations
# --------------------------------------------------------------------------------------

# An int C is a conv3-C (3x3, padding 1), ("conv1", C) a conv1-C (1x1, configuration C),
# "M" a 2x2 max-pooling with stride 2, "LRN" local response normalisation (A-LRN).
#
#   config  weight layers   per stage (64, 128, 256, 512, 512 channels)   params (Table 2)
#   A       11              1, 1, 2, 2, 2 conv3                           133 M
#   A-LRN   11              A with local response normalisation after the 1st conv
#   B       13              2, 2, 2, 2, 2 conv3                           133 M
#   C       16              B + one conv1 in each of stages 3, 4, 5       134 M
#   D       16              2, 2, 3, 3, 3 conv3     ("VGG-16")            138 M
#   E       19              2, 2, 4, 4, 4 conv3     ("VGG-19")            144 M
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

    Where we depart from the paper. We keep torchvision's module layout (``features`` /
    ``avgpool`` / ``classifier``, the same indices inside each ``nn.Sequential``,
    ``nn.ReLU(inplace=True)``, the same op order), so that a torchvision state dict loads
    into our model unchanged and the two run the same kernels (the speed benchmark compares
    them). torchvision adds one module the paper does not have: ``AdaptiveAvgPool2d((7, 7))``
    between the convolutions and the classifier, which is the identity on a 224 x 224 input
    (7 x 7 maps already) and lets other sizes through. The paper instead evaluates images of
    any size *densely* (Section 3.2): the FC layers become convolutions (FC6 a 7x7 conv, FC7
    and FC8 1x1 convs), the network slides over the whole image and the class score map is
    averaged: ``fully_convolutional``. Batch normalisation (Ioffe & Szegedy 2015) came out
    after VGG; ``batch_norm=True`` puts a ``BatchNorm2d`` between each convolution and its
    ReLU, like torchvision's ``vgg*_bn``. The default initialisation is Glorot & Bengio's,
    which the paper found (after submission) to train the deep nets without its staged
    pre-training (``reset_parameters``, ``init_from_shallower``).
    """

    def __init__(self, config: str = "D", num_classes: int = 1000, batch_norm: bool = False,
                 dropout: float = 0.5, *, in_channels: int = 3, width: int = 64,
                 hidden: int | None = 4096, pool_size: int = 7, init: str = "glorot"):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
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
    parameters and overfit 50,000 small images). width=64 gives the paper's channels. The
    common CIFAR variant, not in the paper (which only trained on ImageNet); batch norm is
    on by default: without it, and without the paper's staged initialisation, the deeper
    configurations train poorly from scratch.
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
# 4. Receptive fields of stacked 3x3 convolutions (Section 2.3)
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


# --------------------------------------------------------------------------------------
# 5. Prediction
# --------------------------------------------------------------------------------------


# Same as 03_CNN_LeNet/paper/lenet_paper.py:predict
@torch.no_grad()
def predict(model: nn.Module, X, batch_size: int = 1000) -> np.ndarray:
    """Predicted classes (N,) int64 for images X (N, 3, H, W), in batches, in eval mode."""
    model.eval()
    device = next(model.parameters()).device
    X = torch.as_tensor(X)
    out = [model(X[i:i + batch_size].to(device)).argmax(1).cpu()
           for i in range(0, X.shape[0], batch_size)]
    return torch.cat(out).numpy()
