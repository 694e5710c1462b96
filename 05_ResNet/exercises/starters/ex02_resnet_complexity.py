"""Exercise 02 (starter): parameters and multiply-adds of the ImageNet ResNets.

Copy this file to a folder of your own (for example ``my_solutions/``), replace every
``raise NotImplementedError`` with your code, then check it from the repository root:

    pytest 05_ResNet/exercises --solutions my_solutions

The helpers whose names start with ``_`` are given: use them.

He et al. (2015), Table 1 lists five networks built from the same four stages (conv2_x ...
conv5_x of the paper, ``layer1`` ... ``layer4`` in code) and their cost in "FLOPs", which the
paper counts as multiply-adds: 1.8, 3.6, 3.8, 7.6 and 11.3 x 10^9 for ResNet-18, 34, 50,
101 and 152 on one 224 x 224 image. This file counts both numbers from the configuration
alone, layer by layer, without building a network.

A convolution with C_in -> C_out channels, a k x k kernel and an H_out x W_out output has

    parameters    = C_out C_in k^2            (no bias: a BatchNorm follows)
    multiply-adds = C_out C_in k^2 H_out W_out

and a BatchNorm on C channels has 2 C trainable parameters (gamma, beta); its running mean
and variance are buffers, not parameters. The fully connected head has 2048 x 1000 + 1000
(or 512 x 1000 + 1000) parameters and as many multiply-adds as weights.

The task text is in ``05_ResNet/exercises/02_resnet_complexity.md``.
"""

from __future__ import annotations

# Table 1: blocks per stage, and the block type
CONFIGS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # the "planes" of each stage; bottlenecks output 4x that


def _check_config(block: str, layers, stride_on: str, image_size: int) -> tuple[int, ...]:
    """Validate the arguments shared by the two counters; return layers as a tuple of ints."""
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"block must be 'basic' or 'bottleneck'; got {block!r}")
    if stride_on not in ("1x1", "3x3"):
        raise ValueError(f"stride_on must be '1x1' (the paper) or '3x3' (torchvision, "
                         f"'ResNet v1.5'); got {stride_on!r}")
    layers = tuple(layers)
    if len(layers) != 4 or not all(isinstance(n, int) and n >= 1 for n in layers):
        raise ValueError(f"layers must be four ints >= 1 (blocks per stage); got {layers!r}")
    if not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32; got {image_size!r}")
    return layers


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a convolution or pooling window: floor((n + 2p - k) / s) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def resnet_parameter_count(block: str, layers, num_classes: int = 1000) -> int:
    """Trainable parameters of an ImageNet ResNet (conv weights, BN gamma and beta, fc).

    The count does not depend on where the stride sits, nor on the image size.

    Inputs:  block - "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152);
             layers - four ints, blocks per stage (Table 1); num_classes >= 1.
    Returns: int, e.g. 11,689,512 for ("basic", (2, 2, 2, 2)).
    """
    raise NotImplementedError("resnet_parameter_count: "
                              "walk the stages: convs C_out C_in k^2, BNs 2 C, fc C_in K + K")


def resnet_multiply_adds(block: str, layers, image_size: int = 224, stride_on: str = "1x1",
                         num_classes: int = 1000) -> int:
    """Multiply-adds of one forward pass on one image: convolutions and the fc layer.

    BatchNorm, ReLU, pooling and the residual additions are left out, as in the paper:
    they cost one operation per activation, a fraction of a percent of the total.

    Inputs:  block, layers - as for resnet_parameter_count; image_size - H = W of the input
             (>= 32); stride_on - "1x1" (He et al.) or "3x3" (torchvision's v1.5);
             num_classes >= 1.
    Returns: int, e.g. about 3.86e9 for ResNet-50 with stride_on="1x1" (Table 1: 3.8e9).
    """
    raise NotImplementedError("resnet_multiply_adds: "
                              "per conv C_out C_in k^2 H_out W_out; mind where the stride sits")
