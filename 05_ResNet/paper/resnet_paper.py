"""ResNet as He et al. (2015) describe it: ImageNet and CIFAR-10 models (Level 3 of lesson 05).

K. He, X. Zhang, S. Ren, J. Sun (2015), "Deep Residual Learning for Image Recognition",
arXiv:1512.03385 (CVPR 2016). A stack of layers is asked to learn a residual F(x) and
the block outputs y = F(x, {W_i}) + x (Section 3.1-3.2, eq. 1); when the shapes differ
the shortcut is a projection, y = F(x, {W_i}) + W_s x (eq. 2). The blocks (Fig. 5), the
ImageNet models of Table 1 and the CIFAR-10 models of Section 4.2, in that order, with
torchvision's module names and construction order (where production code differs from
the paper: ``ResNet``'s docstring). The implementation details point by point, and the
derivations: ``../theory.md``; porting to and from torchvision: ``convert.py``; training:
``python 05_ResNet/paper/train.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

STRIDE_PLACES = ("1x1", "3x3")
SHORTCUTS = ("A", "B", "none")


def _check_images(x: torch.Tensor, channels: int, who: str) -> None:
    """A clear error for anything but a (N, channels, H, W) floating-point batch."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{who}: expected images of shape (N, {channels}, H, W), "
                         f"got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got {x.dtype}")


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

    Where production code differs from the paper, and how this file covers both:

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
    order, so that porting weights is a ``state_dict`` copy (``convert.py``'s
    ``from_torchvision``, ``to_torchvision``) and ``torch.manual_seed(s)`` gives the same
    initial weights as ``torchvision.models.resnet18()`` after the same seed.
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
