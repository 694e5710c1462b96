"""ResNet as He et al. (2015) describe it: ImageNet and CIFAR-10 models (Level 3 of lesson 05).

The paper
---------
K. He, X. Zhang, S. Ren, J. Sun (2015), "Deep Residual Learning for Image Recognition",
arXiv:1512.03385 (CVPR 2016). A stack of layers is asked to learn a residual F(x) and
the block outputs y = F(x, {W_i}) + x (Section 3.1-3.2, eq. 1); when the shapes differ
the shortcut is a projection, y = F(x, {W_i}) + W_s x (eq. 2).

Implementation details we follow (Section 3.3 "Network Architectures", 3.4
"Implementation"):

- batch normalisation right after each convolution and before the activation; the
  ReLU of a block comes after the addition ("the second nonlinearity after the
  addition", Fig. 2); convolutions carry no bias (BN's beta plays that role);
- ImageNet models (Table 1): a 7x7/2 convolution with 64 filters, 3x3/2 max pooling,
  four stages conv2_x .. conv5_x with 64, 128, 256, 512 filters (x4 at the output of a
  bottleneck block), global average pooling and a 1000-way fully connected layer;
- down-sampling "is performed by conv3_1, conv4_1, and conv5_1 with a stride of 2";
- the shortcut is the identity when the shapes agree; when the dimensions increase,
  the ImageNet models use projection shortcuts (1x1 convolution with stride, + BN:
  "option B", Section 3.3 and Table 3);
- weights initialised as in He et al. (2015b) ("Delving Deep into Rectifiers"):
  N(0, 2 / n) with n = k * k * (output channels) - Kaiming normal in "fan_out" mode,
  the choice torchvision also makes.
- CIFAR-10 (Section 4.2): a 3x3 convolution with 16 filters, three stages of n basic
  blocks on 32x32, 16x16 and 8x8 maps with 16, 32, 64 filters, global average pooling,
  a 10-way fully connected layer: 6n + 2 weighted layers; all shortcuts identity, and
  where the dimensions increase "option A": subsample by 2 and pad the new channels
  with zeros (no parameters).

Where production code differs, and how this file covers both
------------------------------------------------------------
- The stride of a down-sampling Bottleneck. The paper's first layer of conv3_1 etc. is
  the 1x1 convolution, so that is where the stride sits (``stride_on="1x1"``, our
  default). torchvision (and most code since, "ResNet v1.5") puts the stride on the 3x3
  convolution (``stride_on="3x3"``): the 1x1/2 convolution simply drops 3 of every 4
  positions, the 3x3/2 one still sees all of them. NVIDIA report that v1.5 is about
  0.5 % more accurate (top-1) and somewhat slower. Same parameters, same shapes, a
  different function (see theory.md). BasicBlock has only 3x3 convolutions, so both
  settings are the same network there.
- ``zero_init_residual=True`` starts the last BN of every residual branch with gamma = 0
  (Goyal et al. 2017, "Accurate, Large Minibatch SGD"), so that every
  block starts as the identity map; off by default, as in torchvision.

Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0`` / ``.1``, ``fc``), and the modules are built in torchvision's
order, so that porting weights is a ``state_dict`` copy (``from_torchvision``,
``to_torchvision``) and ``torch.manual_seed(s)`` gives the same initial weights as
``torchvision.models.resnet18()`` after the same seed.

Run it from the repository root::

    python 05_ResNet/paper/resnet_paper.py                              # ResNet-20, digits
    python 05_ResNet/paper/resnet_paper.py --dataset cifar10 --data-root DIR --epochs 182
    python 05_ResNet/paper/resnet_paper.py --arch resnet20 --shortcut none     # plain-20
    torchrun --nproc_per_node 2 05_ResNet/paper/resnet_paper.py --device cpu
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from torch import nn

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
from utils.data_loaders import make_loader
from utils.lessons import import_lesson
from utils.training_utils import (
    History,
    accuracy,
    cleanup_distributed,
    evaluate,
    fit,
    is_main_process,
    seed_everything,
    setup_distributed,
    torch_threads,  # n CPU threads, restored after
)
from utils.visualization import plot_confusion_matrix, plot_curves

STRIDE_PLACES = ("1x1", "3x3")
SHORTCUTS = ("A", "B", "none")

# --------------------------------------------------------------------------------------
# 1. Building blocks (Section 3.2, Fig. 2 left and Fig. 5)
# --------------------------------------------------------------------------------------


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1 (keeps the size at stride 1), no bias (BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias: the bottleneck's reduce/restore layers and projections."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: Fig. 2 / Fig. 5 left (ResNet-18/34, CIFAR).

        F(x) = BN(W_2 * relu(BN(W_1 * x)))            (* = convolution, W_1 with stride s)
        y    = relu(F(x) + shortcut(x))               eq. 1 (identity) or eq. 2 (projection)

    Inputs (constructor): inplanes, planes (output channels), stride (1 or 2, on conv1),
        downsample - the shortcut module for a change of shape (None = identity).
    forward: x (N, inplanes, H, W) -> (N, planes, H / stride, W / stride)
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))  # F(x): no ReLU before the addition
        identity = x if self.downsample is None else self.downsample(x)
        out += identity  # y = F(x) + x   (eq. 1)
        return self.relu(out)  # "the second nonlinearity after the addition"


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 restore (x4), and a shortcut: Fig. 5 right (ResNet-50/101/152).

        F(x) = BN(W_3 * relu(BN(W_2 * relu(BN(W_1 * x)))))
        y    = relu(F(x) + shortcut(x))

    W_1: 1x1, inplanes -> planes; W_2: 3x3, planes -> planes; W_3: 1x1, planes -> 4 planes.
    The stride s of a down-sampling block sits on W_1 (``stride_on="1x1"``, the paper:
    the first layer of conv3_1 has stride 2) or on W_2 (``"3x3"``, torchvision v1.5).

    Inputs (constructor): inplanes, planes (width of the 3x3 layer; the block outputs
        4 * planes), stride, downsample (None = identity), stride_on "1x1" | "3x3".
    forward: x (N, inplanes, H, W) -> (N, 4 * planes, H / stride, W / stride)
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, *, stride_on: str = "1x1"):
        super().__init__()
        if stride_on not in STRIDE_PLACES:
            raise ValueError(f"stride_on must be one of {STRIDE_PLACES}, got {stride_on!r}")
        s1, s3 = (stride, 1) if stride_on == "1x1" else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, s1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride, self.stride_on = stride, stride_on

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))  # (N, planes, H/s1, W/s1)
        out = self.relu(self.bn2(self.conv2(out)))  # (N, planes, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (N, 4 planes, H/s, W/s)
        identity = x if self.downsample is None else self.downsample(x)
        out += identity  # eq. 1 / eq. 2
        return self.relu(out)


def _check_images(x: torch.Tensor, channels: int, who: str) -> None:
    """A clear error for anything but a (N, channels, H, W) floating-point batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{who}: expected images of shape (N, {channels}, H, W), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got {x.dtype}")


def _init_weights(model: nn.Module, zero_init_residual: bool) -> None:
    """He et al. 2015b for convolutions (std = sqrt(2 / (k * k * C_out))), BN gamma 1 and
    beta 0; with ``zero_init_residual`` the last BN of each residual branch gets gamma 0
    (Goyal et al. 2017), so that every block starts as y = relu(x) = x (x >= 0 already).
    The fully connected layer keeps PyTorch's default init (as torchvision does)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)


# --------------------------------------------------------------------------------------
# 2. The ImageNet models (Table 1)
# --------------------------------------------------------------------------------------


class ResNet(nn.Module):
    """The ImageNet ResNets of Table 1.

        conv1   7x7, 64, stride 2 + BN + ReLU          (N, 64, H/2, W/2)
                3x3 max pool, stride 2                 (N, 64, H/4, W/4)
        layer1  conv2_x: layers[0] blocks, 64 planes    (N, 64 e, H/4, W/4)    e = expansion
        layer2  conv3_x: layers[1] blocks, 128, /2      (N, 128 e, H/8, W/8)
        layer3  conv4_x: layers[2] blocks, 256, /2      (N, 256 e, H/16, W/16)
        layer4  conv5_x: layers[3] blocks, 512, /2      (N, 512 e, H/32, W/32)
        avgpool global average, fc 512 e -> num_classes

    Inputs (constructor): block (BasicBlock or Bottleneck), layers (4 ints: [2, 2, 2, 2]
        for ResNet-18, [3, 4, 6, 3] for 34 and 50, [3, 4, 23, 3] for 101, [3, 8, 36, 3]
        for 152), num_classes, stride_on ("1x1" paper / "3x3" torchvision v1.5; used by
        Bottleneck only), zero_init_residual.
    forward: x (N, 3, H, W) float -> logits (N, num_classes)
    """

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int],
                 num_classes: int = 1000, *, stride_on: str = "1x1",
                 zero_init_residual: bool = False):
        super().__init__()
        if block not in (BasicBlock, Bottleneck):
            raise TypeError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        if len(layers) != 4 or any(int(n) < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive block counts, got {layers!r}")
        if stride_on not in STRIDE_PLACES:
            raise ValueError(f"stride_on must be one of {STRIDE_PLACES}, got {stride_on!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.block, self.layers = block, tuple(int(n) for n in layers)
        self.stride_on, self.num_classes = stride_on, num_classes
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], stride=1)  # conv2_x
        self.layer2 = self._make_layer(128, layers[1], stride=2)  # conv3_1 has stride 2
        self.layer3 = self._make_layer(256, layers[2], stride=2)  # conv4_1
        self.layer4 = self._make_layer(512, layers[3], stride=2)  # conv5_1
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_weights(self, zero_init_residual)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage: the first block changes the shape (stride, channels), the rest keep it.

        Where the shape changes the shortcut is a projection W_s (eq. 2), a 1x1 convolution
        with the block's stride followed by BN: option B (Section 3.3)."""
        out_planes = planes * self.block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out_planes:
            # Built here and handed to the block, as torchvision does. What makes one seed
            # give torchvision's weights is the block's REGISTRATION order (conv1, bn1,
            # conv2, bn2, ..., then downsample, assigned last in __init__): it fixes the
            # state_dict and parameters() order and the order in which _init_weights walks
            # modules() and draws. Building the projection before or after the block
            # changes nothing: its construction-time draws are overwritten, and the count
            # of draws is the same either way.
            downsample = nn.Sequential(conv1x1(self.inplanes, out_planes, stride),
                                       nn.BatchNorm2d(out_planes))
        kwargs = {"stride_on": self.stride_on} if self.block is Bottleneck else {}
        stage = [self.block(self.inplanes, planes, stride, downsample, **kwargs)]
        self.inplanes = out_planes
        stage += [self.block(out_planes, planes, **kwargs) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk: x (N, 3, H, W) -> (N, 512 e, ceil(H/32), ceil(W/32)), before pooling."""
        _check_images(x, self.conv1.in_channels, type(self).__name__)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)  # (N, 512 e, H/32, W/32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> logits (N, num_classes)."""
        x = self.avgpool(self.forward_features(x))  # (N, 512 e, 1, 1)
        return self.fc(torch.flatten(x, 1))  # (N, num_classes)


def resnet18(num_classes: int = 1000, *, stride_on: str = "1x1",
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-18 (Table 1): BasicBlock x [2, 2, 2, 2]; 11,689,512 parameters (1000 classes)."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, stride_on=stride_on,
                  zero_init_residual=zero_init_residual)


def resnet34(num_classes: int = 1000, *, stride_on: str = "1x1",
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-34 (Table 1): BasicBlock x [3, 4, 6, 3]; 21,797,672 parameters."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, stride_on=stride_on,
                  zero_init_residual=zero_init_residual)


def resnet50(num_classes: int = 1000, *, stride_on: str = "1x1",
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 (Table 1): Bottleneck x [3, 4, 6, 3]; 25,557,032 parameters."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, stride_on=stride_on,
                  zero_init_residual=zero_init_residual)


def resnet101(num_classes: int = 1000, *, stride_on: str = "1x1",
              zero_init_residual: bool = False) -> ResNet:
    """ResNet-101 (Table 1): Bottleneck x [3, 4, 23, 3]; 44,549,160 parameters."""
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, stride_on=stride_on,
                  zero_init_residual=zero_init_residual)


def resnet152(num_classes: int = 1000, *, stride_on: str = "1x1",
              zero_init_residual: bool = False) -> ResNet:
    """ResNet-152 (Table 1): Bottleneck x [3, 8, 36, 3]; 60,192,808 parameters."""
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, stride_on=stride_on,
                  zero_init_residual=zero_init_residual)


# --------------------------------------------------------------------------------------
# 3. The CIFAR-10 models (Section 4.2)
# --------------------------------------------------------------------------------------


class ShortcutA(nn.Module):
    """Option A (Section 3.3): identity with stride-s subsampling and zero-padded channels.

        y[:, :C_in]  = x[:, :, ::s, ::s]       (keep every s-th row and column)
        y[:, C_in:]  = 0                        (the extra channels are zeros)

    No parameters. The new channels are appended after the existing ones (the paper
    says only "extra zero entries padded"; where they go does not change the network,
    because the next layer's filters can be permuted to match).

    Inputs (constructor): in_planes, out_planes (>= in_planes), stride.
    forward: x (N, in_planes, H, W) -> (N, out_planes, ceil(H / s), ceil(W / s))
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"option A can only add channels: {in_planes} -> {out_planes}")
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]  # (N, C_in, H/s, W/s)
        extra = self.out_planes - self.in_planes
        if extra == 0:
            return x
        zeros = x.new_zeros(x.shape[0], extra, x.shape[2], x.shape[3])
        return torch.cat([x, zeros], dim=1)  # (N, C_out, H/s, W/s)

    def extra_repr(self) -> str:
        return f"{self.in_planes} -> {self.out_planes}, stride={self.stride}"


class PlainBlock(BasicBlock):
    """A BasicBlock without its shortcut, y = relu(F(x)): the "plain" nets of Section 4.2
    (Fig. 6 left), to compare with the residual ones. Same parameters as BasicBlock."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class CifarResNet(nn.Module):
    """The CIFAR-10 ResNets of Section 4.2 (ResNet-20/32/44/56/110), 6n + 2 weighted layers.

        conv1   3x3, 16 + BN + ReLU                     (N, 16, 32, 32)
        layer1  n BasicBlocks, 16 filters               (N, 16, 32, 32)
        layer2  n BasicBlocks, 32 filters, first /2     (N, 32, 16, 16)
        layer3  n BasicBlocks, 64 filters, first /2     (N, 64, 8, 8)
        avgpool global average, fc 64 -> num_classes

    Inputs (constructor): depth = 6n + 2 (20, 32, 44, 56, 110, or any other such),
        num_classes, shortcut: "A" (the paper's CIFAR choice: ``ShortcutA``), "B" (1x1
        projection + BN where the shape changes) or "none" (the plain net: no shortcuts).
    forward: x (N, 3, H, W) float -> logits (N, num_classes); 32x32 in the paper.
    """

    def __init__(self, depth: int, num_classes: int = 10, *, shortcut: str = "A"):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise TypeError(f"depth must be an int 6n + 2, got {depth!r}")
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, "
                             f"44, 56, 110, ...), got {depth}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.depth, self.n, self.shortcut = depth, (depth - 2) // 6, shortcut
        self.num_classes = num_classes
        self.inplanes = 16
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, stride=1)  # 32x32 maps
        self.layer2 = self._make_layer(32, stride=2)  # 16x16
        self.layer3 = self._make_layer(64, stride=2)  # 8x8
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self, zero_init_residual=False)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        """One stage of n blocks; the first changes the width and the stride, with the
        chosen shortcut (option A: ``ShortcutA``, B: 1x1 projection + BN, none: plain)."""
        block = PlainBlock if self.shortcut == "none" else BasicBlock
        downsample = None
        if self.shortcut != "none" and (stride != 1 or self.inplanes != planes):
            if self.shortcut == "A":
                downsample = ShortcutA(self.inplanes, planes, stride)
            else:
                downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                           nn.BatchNorm2d(planes))
        stage = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        stage += [block(planes, planes) for _ in range(1, self.n)]
        return nn.Sequential(*stage)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> (N, 64, H/4, W/4), the last stage's maps before pooling."""
        _check_images(x, self.conv1.in_channels, type(self).__name__)
        x = self.relu(self.bn1(self.conv1(x)))  # (N, 16, H, W)
        x = self.layer1(x)
        x = self.layer2(x)  # (N, 32, H/2, W/2)
        return self.layer3(x)  # (N, 64, H/4, W/4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> logits (N, num_classes)."""
        x = self.avgpool(self.forward_features(x))  # (N, 64, 1, 1)
        return self.fc(torch.flatten(x, 1))


def resnet20(num_classes: int = 10) -> CifarResNet:
    """ResNet-20 (n = 3), 0.27 M parameters (Table 6)."""
    return CifarResNet(20, num_classes)


def resnet32(num_classes: int = 10) -> CifarResNet:
    """ResNet-32 (n = 5), 0.46 M parameters (Table 6)."""
    return CifarResNet(32, num_classes)


def resnet44(num_classes: int = 10) -> CifarResNet:
    """ResNet-44 (n = 7), 0.66 M parameters (Table 6)."""
    return CifarResNet(44, num_classes)


def resnet56(num_classes: int = 10) -> CifarResNet:
    """ResNet-56 (n = 9), 0.85 M parameters (Table 6)."""
    return CifarResNet(56, num_classes)


def resnet110(num_classes: int = 10) -> CifarResNet:
    """ResNet-110 (n = 18), 1.7 M parameters (Table 6)."""
    return CifarResNet(110, num_classes)


# --------------------------------------------------------------------------------------
# 4. Porting weights from and to torchvision
# --------------------------------------------------------------------------------------


def from_torchvision(tv_model) -> ResNet:
    """A ``ResNet`` with the weights, buffers, dtype, device and train/eval mode of a
    ``torchvision.models.ResNet`` (resnet18 ... resnet152, not ResNeXt / wide ResNets).

    torchvision puts a Bottleneck's stride on the 3x3 convolution, so the result uses
    ``stride_on="3x3"``; it computes the same outputs. Porting is a ``state_dict``
    copy, because the module names are the same.

    Inputs:  tv_model - torchvision.models.ResNet
    Returns: ResNet
    """
    from torchvision.models import resnet as tv

    if not isinstance(tv_model, tv.ResNet):
        raise TypeError(f"expected a torchvision.models.ResNet, got {type(tv_model).__name__}")
    first = tv_model.layer1[0]
    if isinstance(first, tv.Bottleneck):
        block = Bottleneck
        if first.conv2.groups != 1 or first.conv1.out_channels != 64:
            raise ValueError("from_torchvision: ResNeXt / wide ResNets (groups != 1 or "
                             "width_per_group != 64) are not the paper's ResNet")
    elif isinstance(first, tv.BasicBlock):
        block = BasicBlock
    else:
        raise TypeError(f"unknown torchvision block type {type(first).__name__}")
    problem = _torchvision_port_problem(tv_model, tv)
    if problem:
        raise ValueError(f"from_torchvision: this torchvision ResNet computes something our "
                         f"ResNet cannot: {problem}")
    layers = [len(getattr(tv_model, f"layer{i}")) for i in range(1, 5)]
    with torch.device("meta"):  # shapes only: the weights are about to be replaced
        model = ResNet(block, layers, tv_model.fc.out_features, stride_on="3x3")
    return _assign_state(model, tv_model)


def _torchvision_port_problem(tv_model, tv) -> str | None:
    """Why a torchvision ResNet would not give our outputs after the port, or None.

    The weights of every such model fit our layers; the function does not: dilated 3x3
    convolutions (``replace_stride_with_dilation``), another ``norm_layer`` (GroupNorm,
    FrozenBatchNorm2d, BatchNorm2d with other eps or momentum), other input channels,
    or a replaced stem, pooling or head.
    """
    problems = []
    if tv_model.conv1.in_channels != 3:
        problems.append(f"{tv_model.conv1.in_channels} input channels (ours: 3)")
    dilated = [name for name, m in tv_model.named_modules()
               if isinstance(m, nn.Conv2d) and m.dilation != (1, 1)]
    if dilated:
        problems.append(f"dilated convolutions ({dilated[0]}, ...: replace_stride_with_"
                        "dilation; ours strides every stage)")
    allowed = (tv.ResNet, tv.BasicBlock, tv.Bottleneck, nn.Sequential, nn.Conv2d, nn.ReLU,
               nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Linear)
    for name, m in tv_model.named_modules():
        if type(m) is nn.BatchNorm2d:
            if (m.eps, m.momentum, m.affine, m.track_running_stats) != (1e-5, 0.1, True, True):
                problems.append(f"batch norm with eps={m.eps}, momentum={m.momentum} at {name} "
                                "(ours: nn.BatchNorm2d's defaults, eps=1e-5, momentum=0.1)")
                break
        elif not isinstance(m, allowed):
            problems.append(f"a {type(m).__name__} at {name or 'the top'} (ours has "
                            "nn.BatchNorm2d, ReLU, max / average pooling and one Linear)")
            break
    pool = tv_model.avgpool
    if not isinstance(tv_model.fc, nn.Linear) or not isinstance(pool, nn.AdaptiveAvgPool2d) \
            or pool.output_size not in (1, (1, 1)):
        problems.append("a replaced head (ours: global average pooling and one nn.Linear)")
    return "; ".join(dict.fromkeys(problems)) or None


def to_torchvision(model: ResNet):
    """A ``torchvision.models.ResNet`` with the weights, buffers, dtype, device and mode of
    ``model``, computing the same outputs.

    Raises ValueError for a Bottleneck model with ``stride_on="1x1"``: torchvision always
    strides the 3x3 convolution, so it cannot express the paper's placement (the weights
    would fit, the function would not). BasicBlock models port with either setting.

    Inputs:  model - ResNet
    Returns: torchvision.models.ResNet
    """
    from torchvision.models import resnet as tv

    if not isinstance(model, ResNet):
        raise TypeError(f"expected a ResNet of this module, got {type(model).__name__}")
    if model.block is Bottleneck and model.stride_on != "3x3":
        raise ValueError("to_torchvision: this Bottleneck ResNet strides its 1x1 convolution "
                         "(stride_on='1x1', the paper); torchvision strides the 3x3 one and "
                         "cannot express it. Build the model with stride_on='3x3' to port it.")
    tv_block = tv.Bottleneck if model.block is Bottleneck else tv.BasicBlock
    with torch.device("meta"):
        tv_model = tv.ResNet(tv_block, list(model.layers), num_classes=model.num_classes)
    return _assign_state(tv_model, model)


def _assign_state(target: nn.Module, source: nn.Module) -> nn.Module:
    """Give ``target`` (built on the meta device) copies of ``source``'s parameters and
    buffers, with their dtype and device, and ``source``'s train/eval mode. Building on
    "meta" skips an initialisation whose random weights would be thrown away at once."""
    state = {k: v.detach().clone() for k, v in source.state_dict().items()}
    target.load_state_dict(state, strict=True, assign=True)
    return target.train(source.training)


# --------------------------------------------------------------------------------------
# 5. Training with the paper's CIFAR-10 recipe (Section 4.2)
# --------------------------------------------------------------------------------------

# The data pipeline is the one the low-level lesson wrote: 32x32 colour images with the
# per-pixel training mean subtracted, and the random crop + flip augmentation.
_lowlevel = import_lesson("05_ResNet.pytorch_lowlevel.resnet_lowlevel")
load_images, random_crop_flip = _lowlevel.load_images, _lowlevel.random_crop_flip
lr_milestones = _lowlevel.lr_milestones

ARCHS = {"resnet8": 8, "resnet14": 14, "resnet20": 20, "resnet32": 32, "resnet44": 44,
         "resnet56": 56, "resnet110": 110}


class AugmentingCollate:
    """``collate_fn`` for a DataLoader: stack the batch, then random crop (4-pixel padding)
    + horizontal flip on the whole batch (Section 4.2). A class, not a closure, so that
    DataLoader workers can pickle it. Uses torch's global generator (seeded by the script)."""

    def __call__(self, samples):
        x = torch.stack([s[0] for s in samples])  # (B, 3, H, W)
        y = torch.stack([s[1] for s in samples])  # (B,)
        return random_crop_flip(x), y


def train(model: nn.Module, X, y, *, lr: float, epochs: int, batch_size: int,
          momentum: float = 0.9, weight_decay: float = 1e-4, augment: bool = True,
          seed: int = 0, device="cpu", val: tuple | None = None, progress: bool = False,
          log=None) -> History:
    """The paper's recipe with torch.optim and the shared loop ``fit``.

    SGD, momentum 0.9, weight decay 1e-4, mini-batches of 128 (Section 4.2); the learning
    rate starts at ``lr`` (0.1) and is divided by 10 at 50 % and 75 % of the epochs
    (32k and 48k of the paper's 64k iterations). The paper warms ResNet-110 up at 0.01
    for about 400 iterations; we leave that to ``--lr`` / a shorter first run.

    Inputs:  X (N, 3, H, W) float32 array or tensor; y (N,) int64; augment - random crop +
             flip (``AugmentingCollate``); val - optional (X_val, y_val) evaluated each epoch
    Returns: History (train / val loss and accuracy per epoch, lr, epoch times)
    """
    loader = make_loader(X, y, batch_size=batch_size, shuffle=True, seed=seed)
    if augment:
        loader.collate_fn = AugmentingCollate()
    val_loader = None if val is None else make_loader(val[0], val[1], batch_size=500,
                                                      shuffle=False)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    # lr / 10 at 50 % and 75 % of the epochs (the same milestones as L2's schedule)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=lr_milestones(epochs),
                                                     gamma=0.1)
    return fit(model, loader, loss_fn=nn.CrossEntropyLoss(), optimizer=opt, epochs=epochs,
               val_loader=val_loader, metric_fn=accuracy, scheduler=scheduler, device=device,
               progress=progress, log=log)


DATASET_DEFAULTS = {
    "digits": {"arch": "resnet20", "epochs": 3, "batch_size": 64, "lr": 0.1, "augment": False},
    "cifar10": {"arch": "resnet20", "epochs": 30, "batch_size": 128, "lr": 0.1,
                "augment": True},
}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train a CIFAR ResNet (or its plain counterpart) on digits (default) or CIFAR-10.

    Returns: {"test_accuracy", "train_accuracy", "final_loss" (training loss after
             training, eval mode, whole training set), "train_seconds"}
    """
    parser = argparse.ArgumentParser(
        description="The CIFAR-10 ResNets of He et al. 2015 (Section 4.2) with the paper's "
                    "recipe (SGD 0.9, weight decay 1e-4, lr 0.1 / 10 at 50%% and 75%%, crop + "
                    "flip, per-pixel mean subtracted). torchrun works. Per-dataset "
                    f"defaults: {DATASET_DEFAULTS}")
    add_common_args(parser, datasets=tuple(DATASET_DEFAULTS), epochs=None, batch_size=None,
                    lr=None, out="runs/05_ResNet/l3_resnet")
    parser.add_argument("--arch", choices=list(ARCHS), default=None,
                        help="default: %(default)s")
    parser.add_argument("--shortcut", choices=SHORTCUTS, default="A",
                        help="A: zero-padding identity (paper), B: projections, none: plain net")
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
    if args.digits_size < 16 or args.digits_size % 8:
        parser.error(f"argument --digits-size: expected a multiple of 8, >= 16, got "
                     f"{args.digits_size}")
    with torch_threads(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> dict[str, float]:
    """The body of ``main``: load, train, evaluate, plot."""
    rank, world_size, device = setup_distributed(args.device)
    seed_everything(args.seed)
    out = prepare_out_dir(args.out)
    with data_errors():  # missing, damaged or malformed data: one message, exit status 1
        X_train, y_train, X_test, y_test, classes, note = load_images(
            args.dataset, args.data_root, args.digits_size)
    if is_main_process():
        print(f"{args.dataset}: train {X_train.shape}, test {X_test.shape}")
        if note:
            print(f"note: {note}")
    args.subset = note is not None  # only the 4k/1k CIFAR-10 subset carries a note
    depth = ARCHS[args.arch]
    model = CifarResNet(depth, len(classes), shortcut=args.shortcut)
    name = f"{'plain' if args.shortcut == 'none' else 'ResNet'}-{depth}"
    if is_main_process():
        print(f"{name} (shortcut {args.shortcut}): "
              f"{sum(p.numel() for p in model.parameters()):,} parameters")
    started = time.perf_counter()
    history = train(model, X_train, y_train, lr=args.lr, epochs=args.epochs,
                    batch_size=args.batch_size, momentum=args.momentum,
                    weight_decay=args.weight_decay, augment=args.augment, seed=args.seed,
                    device=device, val=(X_test, y_test), progress=args.progress,
                    log=print if args.progress else None)
    seconds = time.perf_counter() - started
    loss_fn = nn.CrossEntropyLoss()
    train_eval = make_loader(X_train, y_train, batch_size=500, shuffle=False)
    final_loss, train_accuracy = evaluate(model, train_eval, loss_fn=loss_fn, device=device)
    test_eval = make_loader(X_test, y_test, batch_size=500, shuffle=False)
    _, test_accuracy = evaluate(model, test_eval, loss_fn=loss_fn, device=device)
    metrics = {"test_accuracy": test_accuracy, "train_accuracy": train_accuracy,
               "final_loss": final_loss, "train_seconds": seconds}
    if not is_main_process():
        cleanup_distributed()
        return metrics
    print(f"{name} on {args.dataset}: train accuracy {train_accuracy:.4f}, test accuracy "
          f"{test_accuracy:.4f} (error {100 * (1 - test_accuracy):.2f} %), final loss "
          f"{final_loss:.4f}, {seconds:.1f} s of training on {device}"
          + (f" x {world_size} processes" if world_size > 1 else ""))
    _plots(model, history, args, X_test, y_test, classes, out, name, device)
    cleanup_distributed()
    return metrics


def gradient_norms_at_init(depth: int, x: torch.Tensor, y: torch.Tensor,
                           shortcut: str, seed: int = 0) -> list[float]:
    """||dL/dW|| of every convolution of a freshly initialised CIFAR net (input side first),
    for one batch: how much gradient reaches each layer before any training.

    Inputs: depth (6n + 2); x (N, 3, H, W); y (N,); shortcut "A" / "B" / "none"
    Returns: a list of 6n + 1 floats (conv1, then the blocks' convolutions in order)
    """
    torch.manual_seed(seed)
    model = CifarResNet(depth, int(y.max()) + 1, shortcut=shortcut)
    nn.CrossEntropyLoss()(model(x), y).backward()
    return [float(m.weight.grad.norm()) for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def _plots(model, history: History, args, X_test, y_test, classes, out, name, device):
    """Loss and accuracy curves, confusion matrix, gradient norms per layer at init."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    data = args.dataset + (" subset" if args.dataset == "cifar10" and args.subset else "")
    title = f"L3 {name} on {data}"
    plot_curves({"train loss (mean over each epoch)": history.train_loss,
                 "test loss": history.val_loss}, path=out / "loss.png",
                ylabel="cross-entropy", title=title)
    plot_curves({"train accuracy": history.train_metric, "test accuracy": history.val_metric},
                path=out / "accuracy.png", ylabel="accuracy", title=title)
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(X_test[:1000]).to(device))
    plot_confusion_matrix(y_test[:1000], logits.argmax(1).cpu().numpy(), class_names=classes,
                          path=out / "confusion.png", title=f"{title} (test)")
    # Plain vs residual at initialisation: one batch, same depth, same seed.
    x = torch.as_tensor(X_test[:64])
    y = torch.as_tensor(y_test[:64])
    depth = ARCHS[args.arch]
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for shortcut, label in (("A", f"ResNet-{depth}"), ("none", f"plain-{depth}")):
        norms = gradient_norms_at_init(depth, x, y, shortcut, seed=args.seed)
        ax.plot(range(1, len(norms) + 1), norms, marker="o", markersize=3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("3x3 convolution (input side on the left)")
    ax.set_ylabel("||dL/dW|| at initialisation")
    ax.set_title(f"gradient reaching each layer at init, one batch of {data}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(out / "grad_norms_at_init.png", dpi=100)
    print(f"plots written to {out}")


if __name__ == "__main__":
    main()
